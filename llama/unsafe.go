package llama

/*
#include <math.h>

// bpo_log_softmax_at returns log softmax(row)[tok] for a row of n logits, accumulating in double.
static double bpo_log_softmax_at(const float * row, int n, int tok) {
	float mx = row[0];
	for (int i = 1; i < n; i++) if (row[i] > mx) mx = row[i];
	double sum = 0.0;
	float part = 0.0f;
	for (int i = 0; i < n; i++) {
		part += expf(row[i] - mx);
		if ((i & 255) == 255) { sum += part; part = 0.0f; }
	}
	sum += part;
	return (double) (row[tok] - mx) - log(sum);
}
*/
import "C"

import "unsafe"

// unsafeFloats views n floats of C memory as a Go slice (valid as long as the C memory is).
func unsafeFloats(p *C.float, n int) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(p)), n)
}

// logSoftmaxAt returns log softmax(row)[tok].
func logSoftmaxAt(row []float32, tok Token) float64 {
	return float64(C.bpo_log_softmax_at((*C.float)(unsafe.Pointer(&row[0])), C.int(len(row)), C.int(tok)))
}
