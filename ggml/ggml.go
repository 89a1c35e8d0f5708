package ggml

/*
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

// bpo_protect_inplace_backward marks the incoming gradient of every RMS_NORM_BACK node as an output.
// ggml's allocator may compute RMS_NORM_BACK in place over that gradient (src0), but the CPU kernel
// first copies x into dst and only then adds dz, so an aliased dz is destroyed and the gradient is
// wrong. Outputs are never reused in place, which avoids the aliasing. Returns how many were marked.
static int bpo_protect_inplace_backward(struct ggml_cgraph * g) {
	int n = 0;
	for (int i = 0; i < ggml_graph_n_nodes(g); i++) {
		struct ggml_tensor * t = ggml_graph_node(g, i);
		if (t->op == GGML_OP_RMS_NORM_BACK && t->src[0] != NULL) {
			ggml_set_output(t->src[0]);
			n++;
		}
	}
	return n;
}

// bpo_rewrite_out_prod returns a copy of graph g in which every OUT_PROD node (ggml's backward of
// mul_mat) is computed as the equivalent MUL_MAT of transposed operands:
// out_prod(a, b)[i, j] = sum_k a[i, k] b[j, k] = mul_mat(a^T, b^T)[i, j]. ggml's CPU out_prod is a
// scalar multiply-add loop (and dequantizes quantized rows one at a time); mul_mat runs the tiled
// SIMD kernels. Quantized or F16 operands are converted to F32 first. Nodes keep their identity, so
// gradient tensors found before the rewrite stay valid.
// bpo_transposed returns cont(transpose(x)) as F32, reusing an earlier one for the same x (the
// input of q/k/v or of gate/up feeds several projections).
struct bpo_tcache { struct ggml_tensor * src[512]; struct ggml_tensor * tr[512]; int n; };

// bpo_transpose_f32 is a custom ggml op: dst (contiguous [ne1, ne0, ne2, ne3]) = transpose of src[0]
// (F32, any strides), in 32x32 tiles split over the threads. ggml's own cont(transpose(x)) copies
// one element per memcpy call and was a fifth of a training step.
static void bpo_transpose_f32(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
	(void) userdata;
	const struct ggml_tensor * src = dst->src[0];
	const int64_t n0 = src->ne[0], n1 = src->ne[1], n2 = src->ne[2], n3 = src->ne[3];
	const int64_t t0 = (n0 + 31) / 32, t1 = (n1 + 31) / 32;
	const int64_t tiles = t0 * t1 * n2 * n3;
	for (int64_t tile = ith; tile < tiles; tile += nth) {
		int64_t r = tile;
		const int64_t b0 = r % t0; r /= t0;
		const int64_t b1 = r % t1; r /= t1;
		const int64_t i2 = r % n2; r /= n2;
		const int64_t i3 = r;
		const char * sp = (const char *) src->data + i2 * src->nb[2] + i3 * src->nb[3];
		char * dp = (char *) dst->data + i2 * dst->nb[2] + i3 * dst->nb[3];
		const int64_t e0 = b0 * 32 + 32 < n0 ? b0 * 32 + 32 : n0;
		const int64_t e1 = b1 * 32 + 32 < n1 ? b1 * 32 + 32 : n1;
		for (int64_t i1 = b1 * 32; i1 < e1; i1++) {
			for (int64_t i0 = b0 * 32; i0 < e0; i0++) {
				*(float *) (dp + i0 * dst->nb[1] + i1 * dst->nb[0]) = *(const float *) (sp + i0 * src->nb[0] + i1 * src->nb[1]);
			}
		}
	}
}

static struct ggml_tensor * bpo_transposed(struct ggml_context * ctx, struct bpo_tcache * c, struct ggml_tensor * x) {
	for (int i = 0; i < c->n; i++) {
		if (c->src[i] == x) return c->tr[i];
	}
	struct ggml_tensor * y = x->type == GGML_TYPE_F32 ? x : ggml_cast(ctx, x, GGML_TYPE_F32);
	y = ggml_custom_4d(ctx, GGML_TYPE_F32, y->ne[1], y->ne[0], y->ne[2], y->ne[3], &y, 1, bpo_transpose_f32, GGML_N_TASKS_MAX, NULL);
	if (c->n < 512) {
		c->src[c->n] = x;
		c->tr[c->n] = y;
		c->n++;
	}
	return y;
}

static struct ggml_cgraph * bpo_rewrite_out_prod(struct ggml_context * ctx, struct ggml_cgraph * g, size_t size) {
	struct ggml_cgraph * out = ggml_new_graph_custom(ctx, size, false);
	struct bpo_tcache * cache = (struct bpo_tcache *) calloc(1, sizeof(struct bpo_tcache));
	const int n = ggml_graph_n_nodes(g);
	for (int i = 0; i < n; i++) {
		struct ggml_tensor * t = ggml_graph_node(g, i);
		if (t->op == GGML_OP_OUT_PROD && t->type == GGML_TYPE_F32) {
			struct ggml_tensor * a = t->src[0];
			struct ggml_tensor * b = t->src[1];
			struct ggml_tensor * at = bpo_transposed(ctx, cache, a);
			struct ggml_tensor * bt;
			if (b->op == GGML_OP_TRANSPOSE && b->src[0]->type == GGML_TYPE_F32 && ggml_is_contiguous(b->src[0])) {
				bt = b->src[0];
			} else {
				bt = bpo_transposed(ctx, cache, b);
			}
			if (at->ne[0] == bt->ne[0] && bt->ne[2] % at->ne[2] == 0 && bt->ne[3] % at->ne[3] == 0 &&
			    at->ne[1] == t->ne[0] && bt->ne[1] == t->ne[1] && bt->ne[2] == t->ne[2] && bt->ne[3] == t->ne[3]) {
				t->op = GGML_OP_MUL_MAT;
				t->src[0] = at;
				t->src[1] = bt;
			}
		}
		ggml_build_forward_expand(out, t);
	}
	free(cache);
	return out;
}

// bpo_low_rank_f32 is a custom ggml op for products that contract only a LoRA rank:
// dst [n, T] = a [n, r] b [r, T] (all F32 and contiguous), dst[i, t] = sum_k a[i, k] b[k, t].
// ggml's mul_mat contracts the contiguous dimension, so with K = r it does one short dot product (and a
// horizontal sum) per output element; here each k streams a contiguous column of a into accumulators of
// 4 tokens x 32 outputs, so the work is plain multiply-adds. Tokens are split over the threads.
typedef float bpo_v16 __attribute__((vector_size(64), aligned(4)));

static void bpo_low_rank_f32(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
	(void) userdata;
	const struct ggml_tensor * a = dst->src[0];
	const struct ggml_tensor * b = dst->src[1];
	const int64_t n = a->ne[0], r = a->ne[1], T = b->ne[1];
	const float * A = (const float *) a->data;
	const float * Bm = (const float *) b->data;
	float * D = (float *) dst->data;
	const int64_t blocks = (T + 3) / 4;
	for (int64_t tb = ith; tb < blocks; tb += nth) {
		const int64_t t0 = tb * 4;
		const int64_t nt = T - t0 < 4 ? T - t0 : 4;
		int64_t i = 0;
		if (nt == 4) {
			const float * b0 = Bm + (t0 + 0) * r, * b1 = Bm + (t0 + 1) * r, * b2 = Bm + (t0 + 2) * r, * b3 = Bm + (t0 + 3) * r;
			for (; i + 32 <= n; i += 32) {
				bpo_v16 c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
				for (int64_t k = 0; k < r; k++) {
					const bpo_v16 x0 = *(const bpo_v16 *) (A + k * n + i);
					const bpo_v16 x1 = *(const bpo_v16 *) (A + k * n + i + 16);
					c00 += x0 * b0[k]; c01 += x1 * b0[k];
					c10 += x0 * b1[k]; c11 += x1 * b1[k];
					c20 += x0 * b2[k]; c21 += x1 * b2[k];
					c30 += x0 * b3[k]; c31 += x1 * b3[k];
				}
				*(bpo_v16 *) (D + (t0 + 0) * n + i) = c00; *(bpo_v16 *) (D + (t0 + 0) * n + i + 16) = c01;
				*(bpo_v16 *) (D + (t0 + 1) * n + i) = c10; *(bpo_v16 *) (D + (t0 + 1) * n + i + 16) = c11;
				*(bpo_v16 *) (D + (t0 + 2) * n + i) = c20; *(bpo_v16 *) (D + (t0 + 2) * n + i + 16) = c21;
				*(bpo_v16 *) (D + (t0 + 3) * n + i) = c30; *(bpo_v16 *) (D + (t0 + 3) * n + i + 16) = c31;
			}
		}
		for (int64_t t = t0; t < t0 + nt; t++) {
			const float * bt = Bm + t * r;
			for (int64_t j = i; j < n; j++) {
				float sum = 0;
				for (int64_t k = 0; k < r; k++) {
					sum += A[k * n + j] * bt[k];
				}
				D[t * n + j] = sum;
			}
		}
	}
}

// bpo_out_prod_f32 is a custom ggml op with the semantics of ggml_out_prod for F32 operands whose rows
// are contiguous (any row and batch strides): dst [n, r, B2, B3] (contiguous), dst[i, k] = sum_t a[i, t]
// b[k, t] per batch (dims 2 and 3 of a and b equal). ggml's out_prod does r x T short vector updates of
// whole dst rows; here 32 x 8 outputs stay in registers while t streams through (a LoRA gradient, the
// token sum, or attention's dK = Q dS^T and dV = dO P^T without transposed copies). Blocks are split
// over the threads.
static void bpo_out_prod_f32(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
	(void) userdata;
	const struct ggml_tensor * a = dst->src[0];
	const struct ggml_tensor * b = dst->src[1];
	const int64_t n = a->ne[0], T = a->ne[1], r = b->ne[0], n2 = b->ne[2], n3 = b->ne[3];
	const int64_t g2 = n2 / a->ne[2], g3 = n3 / a->ne[3]; // batches of b that share one of a
	const int64_t iblocks = (n + 31) / 32, kblocks = (r + 7) / 8;
	const int64_t jobs = iblocks * kblocks * n2 * n3;
	for (int64_t job = ith; job < jobs; job += nth) {
		int64_t q = job;
		const int64_t kb = q % kblocks; q /= kblocks;
		const int64_t ib = q % iblocks; q /= iblocks;
		const int64_t i2 = q % n2, i3 = q / n2;
		const char * A = (const char *) a->data + (i2 / g2) * a->nb[2] + (i3 / g3) * a->nb[3];
		const char * Bm = (const char *) b->data + i2 * b->nb[2] + i3 * b->nb[3];
		char * D = (char *) dst->data + i2 * dst->nb[2] + i3 * dst->nb[3];
		const int64_t i0 = ib * 32, k0 = kb * 8;
		const int64_t ie = i0 + 32 < n ? i0 + 32 : n;
		const int64_t nk = r - k0 < 8 ? r - k0 : 8;
		int64_t i = i0;
		if (nk == 8) {
			for (; i + 32 <= ie; i += 32) { // 32 outputs x 8 ranks in 16 registers; two loads per token
				bpo_v16 c0[8], c1[8];
				for (int j = 0; j < 8; j++) c0[j] = c1[j] = (bpo_v16){0};
				for (int64_t t = 0; t < T; t++) {
					const char * at = A + t * a->nb[1] + i * sizeof(float);
					const bpo_v16 x0 = *(const bpo_v16 *) at, x1 = *(const bpo_v16 *) (at + 16 * sizeof(float));
					const float * bt = (const float *) (Bm + t * b->nb[1]) + k0;
					for (int j = 0; j < 8; j++) {
						c0[j] += x0 * bt[j];
						c1[j] += x1 * bt[j];
					}
				}
				for (int j = 0; j < 8; j++) {
					char * d = D + (k0 + j) * dst->nb[1] + i * sizeof(float);
					*(bpo_v16 *) d = c0[j];
					*(bpo_v16 *) (d + 16 * sizeof(float)) = c1[j];
				}
			}
			for (; i + 16 <= ie; i += 16) {
				bpo_v16 c[8];
				for (int j = 0; j < 8; j++) c[j] = (bpo_v16){0};
				for (int64_t t = 0; t < T; t++) {
					const bpo_v16 x = *(const bpo_v16 *) (A + t * a->nb[1] + i * sizeof(float));
					const float * bt = (const float *) (Bm + t * b->nb[1]) + k0;
					for (int j = 0; j < 8; j++) c[j] += x * bt[j];
				}
				for (int j = 0; j < 8; j++) *(bpo_v16 *) (D + (k0 + j) * dst->nb[1] + i * sizeof(float)) = c[j];
			}
		}
		for (int64_t k = k0; k < k0 + nk; k++) {
			for (int64_t ii = i; ii < ie; ii++) {
				float sum = 0;
				for (int64_t t = 0; t < T; t++) {
					sum += ((const float *) (A + t * a->nb[1]))[ii] * ((const float *) (Bm + t * b->nb[1]))[k];
				}
				((float *) (D + k * dst->nb[1]))[ii] = sum;
			}
		}
	}
}

// bpo_out_prod makes the custom op (see bpo_out_prod_f32).
static struct ggml_tensor * bpo_out_prod(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b) {
	struct ggml_tensor * args[2] = {a, b};
	return ggml_custom_4d(ctx, GGML_TYPE_F32, a->ne[0], b->ne[0], b->ne[2], b->ne[3], args, 2, bpo_out_prod_f32, GGML_N_TASKS_MAX, NULL);
}

// bpo_sigmoid16 is 1 / (1 + exp(-x)) for 16 floats: exp by 2^n times a degree-6 polynomial on
// |r| <= ln2/2 (relative error below 2e-7), so that the loop vectorizes (libm's expf does not).
typedef int32_t bpo_v16i __attribute__((vector_size(64), aligned(4)));

static inline bpo_v16 bpo_sigmoid16(bpo_v16 x) {
	bpo_v16 z = -x;
	for (int j = 0; j < 16; j++) z[j] = z[j] < -87.0f ? -87.0f : (z[j] > 87.0f ? 87.0f : z[j]);
	const bpo_v16 t = z * 1.44269504088896341f + 128.5f; // > 0: truncation rounds to nearest
	const bpo_v16i n = __builtin_convertvector(t, bpo_v16i) - 128;
	const bpo_v16 nf = __builtin_convertvector(n, bpo_v16);
	const bpo_v16 r = (z - nf * 0.693359375f) - nf * -2.12194440e-4f;
	bpo_v16 p = (bpo_v16){0} + 1.0f / 720;
	p = p * r + 1.0f / 120;
	p = p * r + 1.0f / 24;
	p = p * r + 1.0f / 6;
	p = p * r + 0.5f;
	p = p * r + 1.0f;
	p = p * r + 1.0f;
	bpo_v16 scale;
	const bpo_v16i bits = (n + 127) << 23;
	memcpy(&scale, &bits, sizeof scale);
	return 1.0f / (1.0f + p * scale);
}

// bpo_swiglu_back_f32 is a custom ggml op, the backward pass of m = silu(a) * b given dm (all F32,
// contiguous, the same shape [n, T]): dst [n, T, 2] holds da = dm b s (1 + a (1 - s)) and db = dm a s,
// s = sigmoid(a). One pass instead of ggml's scalar silu_back, two muls and a silu.
static void bpo_swiglu_back_f32(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
	(void) userdata;
	const float * dm = (const float *) dst->src[0]->data;
	const float * a = (const float *) dst->src[1]->data;
	const float * b = (const float *) dst->src[2]->data;
	const int64_t n = ggml_nelements(dst->src[0]);
	float * da = (float *) dst->data;
	float * db = da + n;
	const int64_t blocks = (n + 1023) / 1024;
	for (int64_t blk = ith; blk < blocks; blk += nth) {
		const int64_t i0 = blk * 1024, i1 = i0 + 1024 < n ? i0 + 1024 : n;
		int64_t i = i0;
		for (; i + 16 <= i1; i += 16) {
			const bpo_v16 va = *(const bpo_v16 *) (a + i), vb = *(const bpo_v16 *) (b + i), vd = *(const bpo_v16 *) (dm + i);
			const bpo_v16 sg = bpo_sigmoid16(va);
			*(bpo_v16 *) (da + i) = vd * vb * sg * (1.0f + va * (1.0f - sg));
			*(bpo_v16 *) (db + i) = vd * va * sg;
		}
		for (; i < i1; i++) {
			const float sg = 1.0f / (1.0f + expf(-a[i]));
			da[i] = dm[i] * b[i] * sg * (1.0f + a[i] * (1.0f - sg));
			db[i] = dm[i] * a[i] * sg;
		}
	}
}

// bpo_swiglu_back makes the custom op (see bpo_swiglu_back_f32).
static struct ggml_tensor * bpo_swiglu_back(struct ggml_context * ctx, struct ggml_tensor * dm, struct ggml_tensor * a, struct ggml_tensor * b) {
	struct ggml_tensor * args[3] = {dm, a, b};
	return ggml_custom_4d(ctx, GGML_TYPE_F32, dm->ne[0], dm->ne[1], 2, 1, args, 3, bpo_swiglu_back_f32, GGML_N_TASKS_MAX, NULL);
}

// bpo_gelu_tanh is GELU in its tanh form, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), with libm's
// tanhf. (ggml's own gelu reads an F16 table: finite differences through it are meaningless.)
static inline float bpo_gelu_tanh(float x, float * dgelu) {
	const float c = 0.7978845608028654f, k = 0.044715f;
	const float t = tanhf(c * x * (1.0f + k * x * x));
	if (dgelu) {
		*dgelu = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + 3.0f * k * x * x);
	}
	return 0.5f * x * (1.0f + t);
}

// bpo_geglu_tanh_f32 is a custom ggml op: dst = gelu_tanh(a) * b (a, b F32, contiguous, one shape).
static void bpo_geglu_tanh_f32(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
	(void) userdata;
	const float * a = (const float *) dst->src[0]->data;
	const float * b = (const float *) dst->src[1]->data;
	float * m = (float *) dst->data;
	const int64_t n = ggml_nelements(dst);
	for (int64_t i = ith; i < n; i += nth) {
		m[i] = bpo_gelu_tanh(a[i], NULL) * b[i];
	}
}

// bpo_geglu_tanh_back_f32 is the backward pass of m = gelu_tanh(a) * b given dm: dst [n, T, 2] holds
// da = dm b gelu'(a) and db = dm gelu(a).
static void bpo_geglu_tanh_back_f32(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
	(void) userdata;
	const float * dm = (const float *) dst->src[0]->data;
	const float * a = (const float *) dst->src[1]->data;
	const float * b = (const float *) dst->src[2]->data;
	const int64_t n = ggml_nelements(dst->src[0]);
	float * da = (float *) dst->data;
	float * db = da + n;
	for (int64_t i = ith; i < n; i += nth) {
		float d;
		const float gl = bpo_gelu_tanh(a[i], &d);
		da[i] = dm[i] * b[i] * d;
		db[i] = dm[i] * gl;
	}
}

// bpo_geglu_tanh makes the custom op (see bpo_geglu_tanh_f32).
static struct ggml_tensor * bpo_geglu_tanh(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b) {
	struct ggml_tensor * args[2] = {a, b};
	return ggml_custom_4d(ctx, GGML_TYPE_F32, a->ne[0], a->ne[1], 1, 1, args, 2, bpo_geglu_tanh_f32,
		GGML_N_TASKS_MAX, NULL);
}

// bpo_geglu_tanh_back makes the custom op (see bpo_geglu_tanh_back_f32).
static struct ggml_tensor * bpo_geglu_tanh_back(struct ggml_context * ctx, struct ggml_tensor * dm,
		struct ggml_tensor * a, struct ggml_tensor * b) {
	struct ggml_tensor * args[3] = {dm, a, b};
	return ggml_custom_4d(ctx, GGML_TYPE_F32, dm->ne[0], dm->ne[1], 2, 1, args, 3, bpo_geglu_tanh_back_f32,
		GGML_N_TASKS_MAX, NULL);
}

// bpo_low_rank makes the custom op a [n, r] times b [r, T] (see bpo_low_rank_f32).
static struct ggml_tensor * bpo_low_rank(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b) {
	struct ggml_tensor * args[2] = {a, b};
	return ggml_custom_4d(ctx, GGML_TYPE_F32, a->ne[0], b->ne[1], 1, 1, args, 2, bpo_low_rank_f32, GGML_N_TASKS_MAX, NULL);
}

// bpo_transpose makes the custom op cont(transpose(x)) for an F32 x (see bpo_transpose_f32).
static struct ggml_tensor * bpo_transpose(struct ggml_context * ctx, struct ggml_tensor * x) {
	return ggml_custom_4d(ctx, GGML_TYPE_F32, x->ne[1], x->ne[0], x->ne[2], x->ne[3], &x, 1, bpo_transpose_f32, GGML_N_TASKS_MAX, NULL);
}

// bpo_row is a pointer to row (i1, i2, i3) of t.
static inline float * bpo_row(const struct ggml_tensor * t, int64_t i1, int64_t i2, int64_t i3) {
	return (float *) ((char *) t->data + i1 * t->nb[1] + i2 * t->nb[2] + i3 * t->nb[3]);
}

// bpo_f32_arg packs a float into a custom op's userdata pointer (no memory to own), bpo_f32_of unpacks it.
static inline void * bpo_f32_arg(float f) { uint32_t b; memcpy(&b, &f, 4); return (void *) (uintptr_t) b; }
static inline float bpo_f32_of(void * p) { uint32_t b = (uint32_t) (uintptr_t) p; float f; memcpy(&f, &b, 4); return f; }

// bpo_dot is a float dot product with 16 independent partial sums, which the compiler vectorizes.
static inline float bpo_dot(const float * a, const float * b, int64_t n) {
	float acc[16] = {0};
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
	}
	float s = 0;
	for (; i < n; i++) s += a[i] * b[i];
	for (int j = 0; j < 16; j++) s += acc[j];
	return s;
}

// bpo_softmax_back_f32: dst = scale * y * (dy - dot(y, dy)) row by row, for src[0] = dy and src[1] = y = softmax
// output (F32, rows contiguous). ggml's SOFT_MAX_BACK computes the same but may be given y's memory as its
// output by the allocator, and then overwrites y before reading it; a custom op never runs in place.
static void bpo_softmax_back_f32(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
	const float scale = bpo_f32_of(userdata);
	const struct ggml_tensor * dy = dst->src[0];
	const struct ggml_tensor * y = dst->src[1];
	const int64_t n = dst->ne[0], rows = dst->ne[1] * dst->ne[2] * dst->ne[3];
	for (int64_t r = ith; r < rows; r += nth) {
		const int64_t i1 = r % dst->ne[1], i2 = (r / dst->ne[1]) % dst->ne[2], i3 = r / (dst->ne[1] * dst->ne[2]);
		const float * pdy = bpo_row(dy, i1, i2, i3);
		const float * py = bpo_row(y, i1, i2, i3);
		float * pdx = bpo_row(dst, i1, i2, i3);
		const float d = bpo_dot(py, pdy, n);
		for (int64_t i = 0; i < n; i++) pdx[i] = scale * py[i] * (pdy[i] - d);
	}
}

// bpo_rms_norm_back_f32: the gradient of rms_norm(x) (src[1] = x) for the output gradient src[0] = dz, row by
// row: dx = (dz - x * dot(x, dz) / (sum(x^2) + n eps)) / sqrt(mean(x^2) + eps). ggml's RMS_NORM_BACK
// destroys dz when the allocator gives it dz's memory; a custom op never runs in place.
static void bpo_rms_norm_back_f32(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
	const float eps = bpo_f32_of(userdata);
	const struct ggml_tensor * dz = dst->src[0];
	const struct ggml_tensor * x = dst->src[1];
	const int64_t n = dst->ne[0], rows = dst->ne[1] * dst->ne[2] * dst->ne[3];
	for (int64_t r = ith; r < rows; r += nth) {
		const int64_t i1 = r % dst->ne[1], i2 = (r / dst->ne[1]) % dst->ne[2], i3 = r / (dst->ne[1] * dst->ne[2]);
		const float * pdz = bpo_row(dz, i1, i2, i3);
		const float * px = bpo_row(x, i1, i2, i3);
		float * pdx = bpo_row(dst, i1, i2, i3);
		const double sxx = bpo_dot(px, px, n), sxdz = bpo_dot(px, pdz, n);
		const float rrms = (float) (1.0 / sqrt(sxx / n + eps));
		const float c = (float) (-sxdz / (sxx + eps * n));
		for (int64_t i = 0; i < n; i++) pdx[i] = (pdz[i] + c * px[i]) * rrms;
	}
}

// bpo_token_logp_f32: dst[c] = log softmax(logits[:, c])[target[c]] for src[0] = logits [V, C], src[1] = the
// same logits' softmax [V, C] and src[2] = targets (I32 [C]). With m = max(logits[:, c]) at index j,
// softmax[j] = 1 / sum(exp(logits - m)), so log-prob = logits[t] - m + log(softmax[j]): exact and stable
// (softmax[j] >= 1/V never underflows, unlike softmax[t]).
static void bpo_token_logp_f32(struct ggml_tensor * dst, int ith, int nth, void * userdata) {
	(void) userdata;
	const struct ggml_tensor * lg = dst->src[0];
	const struct ggml_tensor * sm = dst->src[1];
	const struct ggml_tensor * tg = dst->src[2];
	const int64_t V = lg->ne[0], C = lg->ne[1];
	for (int64_t c = ith; c < C; c += nth) {
		const float * l = bpo_row(lg, c, 0, 0);
		const float * p = bpo_row(sm, c, 0, 0);
		const int32_t t = *(const int32_t *) ((const char *) tg->data + c * tg->nb[0]);
		int64_t j = 0;
		for (int64_t v = 1; v < V; v++) {
			if (l[v] > l[j]) j = v;
		}
		float * out = (float *) ((char *) dst->data + c * dst->nb[0]);
		*out = (t < 0 || t >= V) ? NAN : (l[t] - l[j]) + logf(p[j]);
	}
}

static struct ggml_tensor * bpo_softmax_back(struct ggml_context * ctx, struct ggml_tensor * dy, struct ggml_tensor * y, float scale) {
	struct ggml_tensor * args[2] = {dy, y};
	return ggml_custom_4d(ctx, GGML_TYPE_F32, dy->ne[0], dy->ne[1], dy->ne[2], dy->ne[3], args, 2, bpo_softmax_back_f32, GGML_N_TASKS_MAX, bpo_f32_arg(scale));
}

static struct ggml_tensor * bpo_rms_norm_back(struct ggml_context * ctx, struct ggml_tensor * dz, struct ggml_tensor * x, float eps) {
	struct ggml_tensor * args[2] = {dz, x};
	return ggml_custom_4d(ctx, GGML_TYPE_F32, dz->ne[0], dz->ne[1], dz->ne[2], dz->ne[3], args, 2, bpo_rms_norm_back_f32, GGML_N_TASKS_MAX, bpo_f32_arg(eps));
}

static struct ggml_tensor * bpo_token_logp(struct ggml_context * ctx, struct ggml_tensor * logits, struct ggml_tensor * softmax, struct ggml_tensor * targets) {
	struct ggml_tensor * args[3] = {logits, softmax, targets};
	return ggml_custom_4d(ctx, GGML_TYPE_F32, logits->ne[1], 1, 1, 1, args, 3, bpo_token_logp_f32, GGML_N_TASKS_MAX, NULL);
}

// bpoPauseCallback is defined in Go (pause.go); bpo_sched_pause installs it with state as user data
// (or removes it when state is NULL).
extern bool bpoPauseCallback(struct ggml_tensor * t, bool ask, void * user_data);
static void bpo_sched_pause(ggml_backend_sched_t sched, void * state) {
	ggml_backend_sched_set_eval_callback(sched, state ? bpoPauseCallback : NULL, state);
}

// bpo_node_index returns t's position among g's nodes, or -1.
static int bpo_node_index(struct ggml_cgraph * g, struct ggml_tensor * t) {
	for (int i = 0; i < ggml_graph_n_nodes(g); i++) {
		if (ggml_graph_node(g, i) == t) return i;
	}
	return -1;
}

// bpo_subgraph makes a graph of g's nodes [i0, i1), in order (tensors are shared, not copied).
static struct ggml_cgraph * bpo_subgraph(struct ggml_context * ctx, struct ggml_cgraph * g, int i0, int i1) {
	struct ggml_cgraph * s = ggml_new_graph_custom(ctx, (size_t) (i1 - i0 + 1), false);
	for (int i = i0; i < i1; i++) {
		ggml_graph_add_node(s, ggml_graph_node(g, i));
	}
	return s;
}
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"slices"
	"unsafe"
)

// This file is a thin Go API over ggml: contexts, tensors, the ops the training graphs use, graphs with
// automatic differentiation, and backend buffers and compute through ggml's scheduler (so the same graph
// can later run on a GPU backend).

// GContext is a ggml context that holds tensor and graph metadata (no_alloc: data lives in backend buffers).
// A portable context builds the custom CPU ops from standard ggml ops (see SetPortable).
type GContext struct {
	c        *C.struct_ggml_context
	portable bool
}

// NewGContext makes a metadata context for up to nTensors tensors and one graph of graphSize nodes.
func NewGContext(nTensors, graphSize int, grads bool) *GContext {
	size := C.size_t(nTensors)*C.ggml_tensor_overhead() + C.ggml_graph_overhead_custom(C.size_t(graphSize), C.bool(grads)) + 1024
	return &GContext{c: C.ggml_init(C.struct_ggml_init_params{mem_size: size, no_alloc: true})}
}

// Free releases the context's metadata.
func (g *GContext) Free() {
	if g.c != nil {
		C.ggml_free(g.c)
		g.c = nil
	}
}

// Tensor is a ggml tensor.
type Tensor struct{ t *C.struct_ggml_tensor }

// NewTensor makes a tensor with ggml shape ne (ne[0] fastest).
func (g *GContext) NewTensor(typ GGMLType, ne ...int64) Tensor {
	var cne [4]C.int64_t
	for i, d := range ne {
		cne[i] = C.int64_t(d)
	}
	return Tensor{C.ggml_new_tensor(g.c, C.enum_ggml_type(typ), C.int(len(ne)), &cne[0])}
}

// SetName names the tensor.
func (t Tensor) SetName(name string) Tensor {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	C.ggml_set_name(t.t, cs)
	return t
}

// Name is the tensor's name.
func (t Tensor) Name() string { return C.GoString(&t.t.name[0]) }

// Ne returns dimension i's size.
func (t Tensor) Ne(i int) int64 { return int64(t.t.ne[i]) }

// Nb returns dimension i's stride in bytes.
func (t Tensor) Nb(i int) int64 { return int64(t.t.nb[i]) }

// Type is the tensor's element type.
func (t Tensor) Type() GGMLType { return GGMLType(t.t._type) }

// RowSize is the number of bytes of n consecutive elements of type typ (n a multiple of its block).
func RowSize(typ GGMLType, n int64) int64 {
	return int64(C.ggml_row_size(C.enum_ggml_type(typ), C.int64_t(n)))
}

// Elements is the number of elements.
func (t Tensor) Elements() int64 { return int64(C.ggml_nelements(t.t)) }

// Bytes is the tensor's data size.
func (t Tensor) Bytes() int64 { return int64(C.ggml_nbytes(t.t)) }

// Nil reports whether t is unset.
func (t Tensor) Nil() bool { return t.t == nil }

// SetParam marks t trainable; SetInput / SetOutput / SetLoss set the other graph flags.
func (t Tensor) SetParam()  { C.ggml_set_param(t.t) }
func (t Tensor) SetInput()  { C.ggml_set_input(t.t) }
func (t Tensor) SetOutput() { C.ggml_set_output(t.t) }
func (t Tensor) SetLoss()   { C.ggml_set_loss(t.t) }

// SetFloat32 copies values into the tensor's backend memory (F32 tensors).
func (t Tensor) SetFloat32(v []float32) error {
	if t.Type() != TypeF32 || int64(len(v)) != t.Elements() {
		return fmt.Errorf("ggml: set %s: %w: %d float32 values for a %s tensor of %d elements", t.Name(), ErrInvalidArgument, len(v), t.Type(), t.Elements())
	}
	if len(v) > 0 {
		C.ggml_backend_tensor_set(t.t, unsafe.Pointer(&v[0]), 0, C.size_t(4*len(v)))
	}
	return nil
}

// SetInt32 copies values into an I32 tensor.
func (t Tensor) SetInt32(v []int32) error {
	if t.Type() != C.GGML_TYPE_I32 || int64(len(v)) != t.Elements() {
		return fmt.Errorf("ggml: set %s: %w: %d int32 values for a tensor of %d elements", t.Name(), ErrInvalidArgument, len(v), t.Elements())
	}
	if len(v) > 0 {
		C.ggml_backend_tensor_set(t.t, unsafe.Pointer(&v[0]), 0, C.size_t(4*len(v)))
	}
	return nil
}

// SetBytes copies raw data (in the tensor's type layout) into the tensor.
func (t Tensor) SetBytes(b []byte) error {
	if int64(len(b)) != t.Bytes() {
		return fmt.Errorf("ggml: set %s: %w: %d bytes for a tensor of %d bytes", t.Name(), ErrInvalidArgument, len(b), t.Bytes())
	}
	if len(b) > 0 {
		C.ggml_backend_tensor_set(t.t, unsafe.Pointer(&b[0]), 0, C.size_t(len(b)))
	}
	return nil
}

// Float32 reads an F32 tensor's values into dst (allocated when nil or too short).
func (t Tensor) Float32(dst []float32) []float32 {
	n := int(t.Elements())
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	if n > 0 {
		C.ggml_backend_tensor_get(t.t, unsafe.Pointer(&dst[0]), 0, C.size_t(4*n))
	}
	return dst
}

// Ops. Each returns a new node of the context's graph.

func (g *GContext) MulMat(a, b Tensor) Tensor { return Tensor{C.ggml_mul_mat(g.c, a.t, b.t)} }
func (g *GContext) Add(a, b Tensor) Tensor    { return Tensor{C.ggml_add(g.c, a.t, b.t)} }
func (g *GContext) Mul(a, b Tensor) Tensor    { return Tensor{C.ggml_mul(g.c, a.t, b.t)} }
func (g *GContext) Scale(a Tensor, s float32) Tensor {
	return Tensor{C.ggml_scale(g.c, a.t, C.float(s))}
}
func (g *GContext) RMSNorm(a Tensor, eps float32) Tensor {
	return Tensor{C.ggml_rms_norm(g.c, a.t, C.float(eps))}
}
func (g *GContext) GetRows(a, rows Tensor) Tensor {
	if g.portable {
		return g.portableGetRows(a, rows)
	}
	return Tensor{C.ggml_get_rows(g.c, a.t, rows.t)}
}
func (g *GContext) Cont(a Tensor) Tensor { return Tensor{C.ggml_cont(g.c, a.t)} }
func (g *GContext) Cast(a Tensor, typ GGMLType) Tensor {
	return Tensor{C.ggml_cast(g.c, a.t, C.enum_ggml_type(typ))}
}
func (g *GContext) Transpose(a Tensor) Tensor { return Tensor{C.ggml_transpose(g.c, a.t)} }
func (g *GContext) Permute(a Tensor, p0, p1, p2, p3 int) Tensor {
	return Tensor{C.ggml_permute(g.c, a.t, C.int(p0), C.int(p1), C.int(p2), C.int(p3))}
}
func (g *GContext) Reshape2D(a Tensor, ne0, ne1 int64) Tensor {
	return Tensor{C.ggml_reshape_2d(g.c, a.t, C.int64_t(ne0), C.int64_t(ne1))}
}
func (g *GContext) Reshape3D(a Tensor, ne0, ne1, ne2 int64) Tensor {
	return Tensor{C.ggml_reshape_3d(g.c, a.t, C.int64_t(ne0), C.int64_t(ne1), C.int64_t(ne2))}
}

// View2D views ne0 x ne1 elements of a starting at byte offset, rows nb1 bytes apart.
func (g *GContext) View2D(a Tensor, ne0, ne1, nb1, offset int64) Tensor {
	return Tensor{C.ggml_view_2d(g.c, a.t, C.int64_t(ne0), C.int64_t(ne1), C.size_t(nb1), C.size_t(offset))}
}

// SoftMaxExt computes softmax(a*scale + mask) along dim 0.
func (g *GContext) SoftMaxExt(a, mask Tensor, scale float32) Tensor {
	return Tensor{C.ggml_soft_max_ext(g.c, a.t, mask.t, C.float(scale), 0)}
}

// Rope applies rotary position embeddings to a [head_dim, heads, tokens] tensor. mode 0 rotates
// adjacent pairs (llama), mode 2 (NeoX) rotates halves (qwen2). freqFactors may be nil. scale is
// llama.cpp's freq_scale (1 / rope.scaling.factor for linear scaling, else 1).
func (g *GContext) Rope(a, pos, freqFactors Tensor, nDims, mode, nCtxOrig int, base, scale float32) Tensor {
	return Tensor{C.ggml_rope_ext(g.c, a.t, pos.t, freqFactors.t, C.int(nDims), C.int(mode), C.int(nCtxOrig),
		C.float(base), C.float(scale), 0, 1, 32, 1)}
}

// SwigluSplit computes silu(a) * b.
func (g *GContext) SwigluSplit(a, b Tensor) Tensor { return Tensor{C.ggml_swiglu_split(g.c, a.t, b.t)} }

// CrossEntropyLoss is -sum(labels * log softmax(logits)) / rows, a scalar.
func (g *GContext) CrossEntropyLoss(logits, labels Tensor) Tensor {
	return Tensor{C.ggml_cross_entropy_loss(g.c, logits.t, labels.t)}
}

// Graph is a ggml compute graph.
type Graph struct {
	g     *C.struct_ggml_cgraph
	exec  *C.struct_ggml_cgraph // the graph that runs, when a rewrite made one (else g)
	grads bool
}

func (gr *Graph) run() *C.struct_ggml_cgraph {
	if gr.exec != nil {
		return gr.exec
	}
	return gr.g
}

// NewGraph makes a graph of up to size nodes in g; grads enables automatic differentiation.
func (g *GContext) NewGraph(size int, grads bool) *Graph {
	return &Graph{g: C.ggml_new_graph_custom(g.c, C.size_t(size), C.bool(grads)), grads: grads}
}

// Expand adds t and everything it depends on to the graph.
func (gr *Graph) Expand(t Tensor) { C.ggml_build_forward_expand(gr.g, t.t) }

// BuildBackward appends the backward pass for the graph's loss (see Tensor.SetLoss) w.r.t. its params.
// It also works around an in-place aliasing bug of ggml's RMS_NORM_BACK (see bpo_protect_inplace_backward).
func (gr *Graph) BuildBackward(g *GContext) {
	C.ggml_build_backward_expand(g.c, gr.g, nil)
	C.bpo_protect_inplace_backward(gr.g)
}

// FastOuterProducts rewrites the graph's OUT_PROD nodes (mul_mat backward) as MUL_MATs of transposed
// operands, which run ggml's fast matrix kernels (see bpo_rewrite_out_prod). Call after BuildBackward;
// Grad keeps answering from the original graph. g needs room for one more graph of size nodes.
func (gr *Graph) FastOuterProducts(g *GContext, size int) {
	gr.exec = C.bpo_rewrite_out_prod(g.c, gr.g, C.size_t(size))
}

// Grad returns the gradient node of t (nil tensor when t gets none).
func (gr *Graph) Grad(t Tensor) Tensor { return Tensor{C.ggml_graph_get_grad(gr.g, t.t)} }

// Reset sets the loss gradient to 1 and gradient accumulators to 0; call after allocation.
func (gr *Graph) Reset() { C.ggml_graph_reset(gr.g) }

// HasGrads reports whether the graph was made with automatic differentiation.
func (gr *Graph) HasGrads() bool { return gr.grads }

// Nodes is the number of nodes in the graph.
func (gr *Graph) Nodes() int { return int(C.ggml_graph_n_nodes(gr.run())) }

// Backend is a ggml compute backend: the CPU (NewCPUBackend) or a device of a loaded backend library
// (NewDeviceBackend, device.go).
type Backend struct {
	b       C.ggml_backend_t
	threads int
	device  DeviceInfo // set for device backends (NewDeviceBackend); zero for the CPU
}

// NewCPUBackend makes a CPU backend using threads threads (0: DefaultThreads()).
func NewCPUBackend(threads int) (*Backend, error) {
	Init()
	if threads <= 0 {
		threads = DefaultThreads()
	}
	b := C.ggml_backend_cpu_init()
	if b == nil {
		return nil, fmt.Errorf("ggml: could not start the CPU backend")
	}
	C.ggml_backend_cpu_set_n_threads(b, C.int(threads))
	return &Backend{b: b, threads: threads}, nil
}

// SetThreads sets the backend's thread count (at least 1); it does nothing on a device backend.
func (b *Backend) SetThreads(n int) {
	if !b.Device().IsCPU() {
		return
	}
	b.threads = max(n, 1)
	C.ggml_backend_cpu_set_n_threads(b.b, C.int(b.threads))
}

// Free releases the backend.
func (b *Backend) Free() {
	if b.b != nil {
		C.ggml_backend_free(b.b)
		b.b = nil
	}
}

// Buffer is backend memory holding the tensors of one context.
type Buffer struct{ buf C.ggml_backend_buffer_t }

// AllocTensors allocates backend memory for every tensor of g.
func (b *Backend) AllocTensors(g *GContext) (*Buffer, error) {
	buf := C.ggml_backend_alloc_ctx_tensors(g.c, b.b)
	if buf == nil {
		return nil, fmt.Errorf("ggml: could not allocate backend memory for tensors (out of memory?)")
	}
	return &Buffer{buf: buf}, nil
}

// Size is the buffer's size in bytes.
func (b *Buffer) Size() int64 { return int64(C.ggml_backend_buffer_get_size(b.buf)) }

// Free releases the buffer.
func (b *Buffer) Free() {
	if b.buf != nil {
		C.ggml_backend_buffer_free(b.buf)
		b.buf = nil
	}
}

// Scheduler allocates and computes graphs over one or more backends (ggml_backend_sched).
type Scheduler struct {
	s        C.ggml_backend_sched_t
	backends []C.ggml_backend_t
	cpu      []*Backend // the CPU backends, whose thread count follows the machine's load (threads.go)
	peak     int64
}

// adaptThreads sets each CPU backend's threads for the next compute call (see computeThreads).
func (s *Scheduler) adaptThreads() {
	for _, b := range s.cpu {
		C.ggml_backend_cpu_set_n_threads(b.b, C.int(computeThreads(b.threads)))
	}
}

// NewScheduler makes a scheduler over backends (the first has priority) for graphs of up to graphSize nodes.
func NewScheduler(graphSize int, backends ...*Backend) (*Scheduler, error) {
	if len(backends) == 0 {
		return nil, fmt.Errorf("ggml: %w: scheduler needs a backend", ErrInvalidArgument)
	}
	bs := (*C.ggml_backend_t)(C.malloc(C.size_t(len(backends)) * C.size_t(unsafe.Sizeof(C.ggml_backend_t(nil)))))
	defer C.free(unsafe.Pointer(bs))
	view := unsafe.Slice(bs, len(backends))
	s := &Scheduler{}
	for i, b := range backends {
		view[i] = b.b
		s.backends = append(s.backends, b.b)
		if b.Device().IsCPU() {
			s.cpu = append(s.cpu, b)
		}
	}
	s.s = C.ggml_backend_sched_new(bs, nil, C.int(len(backends)), C.size_t(graphSize), false, true)
	if s.s == nil {
		return nil, fmt.Errorf("ggml: could not create the scheduler")
	}
	return s, nil
}

// Pin asks a scheduler to run a node on a given backend (see Scheduler.Alloc).
type Pin struct {
	Node    Tensor
	Backend *Backend
}

// Alloc allocates the graph's intermediate tensors (previous allocations are reset). Pins place nodes
// on backends of the scheduler that ggml's assignment would otherwise choose itself.
func (s *Scheduler) Alloc(gr *Graph, pins ...Pin) error {
	C.ggml_backend_sched_reset(s.s)
	for _, p := range pins {
		if p.Backend == nil || !slices.Contains(s.backends, p.Backend.b) {
			return fmt.Errorf("ggml: %w: pin of %s to a backend the scheduler does not have", ErrInvalidArgument, p.Node.Name())
		}
		C.ggml_backend_sched_set_tensor_backend(s.s, p.Node.t, p.Backend.b)
	}
	if !C.ggml_backend_sched_alloc_graph(s.s, gr.run()) {
		return fmt.Errorf("ggml: could not allocate the compute graph (out of memory?)")
	}
	var total int64
	for _, b := range s.backends {
		total += int64(C.ggml_backend_sched_get_buffer_size(s.s, b))
	}
	s.peak = max(s.peak, total)
	return nil
}

// Compute runs the graph.
func (s *Scheduler) Compute(gr *Graph) error {
	s.adaptThreads()
	if st := C.ggml_backend_sched_graph_compute(s.s, gr.run()); st != C.GGML_STATUS_SUCCESS {
		return fmt.Errorf("ggml: graph compute failed with status %d", int(st))
	}
	return nil
}

// ComputePaused runs the graph like Compute, but stops right after node at has been computed (with
// every earlier node it depends on) to call pause, and only then computes the rest. pause may read any
// output computed so far and set inputs that only later nodes read; an input read by a node on another
// backend is copied at the start of that node's split, so such nodes must come after at in a split of
// their own, or be pinned (Alloc) to the input's backend. This is how a graph split over several
// backends is run in two parts (ComputePart needs a single backend). pause's error is returned after
// the compute finishes; it fails too when at was never computed.
func (s *Scheduler) ComputePaused(gr *Graph, at Tensor, pause func() error) error {
	st := &pauseState{at: at.t, fn: pause}
	h := cgo.NewHandle(st)
	defer h.Delete()
	ud := (*C.uintptr_t)(C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0)))))
	defer C.free(unsafe.Pointer(ud))
	*ud = C.uintptr_t(h)
	s.adaptThreads()
	C.bpo_sched_pause(s.s, unsafe.Pointer(ud))
	status := C.ggml_backend_sched_graph_compute(s.s, gr.run())
	C.bpo_sched_pause(s.s, nil)
	switch {
	case status != C.GGML_STATUS_SUCCESS:
		return fmt.Errorf("ggml: graph compute failed with status %d", int(status))
	case !st.fired:
		return fmt.Errorf("ggml: %w: pause node %s is not a node of the graph", ErrInvalidArgument, at.Name())
	}
	return st.err
}

// PeakComputeBytes is the largest compute-buffer size the scheduler has needed.
func (s *Scheduler) PeakComputeBytes() int64 { return s.peak }

// CarryPeak starts s's peak compute size from old's, for a scheduler that replaces old.
func (s *Scheduler) CarryPeak(old *Scheduler) { s.peak = max(s.peak, old.peak) }

// Free releases the scheduler.
func (s *Scheduler) Free() {
	if s.s != nil {
		C.ggml_backend_sched_free(s.s)
		s.s = nil
	}
}

// Sub computes a - b (b broadcast over a).
func (g *GContext) Sub(a, b Tensor) Tensor { return Tensor{C.ggml_sub(g.c, a.t, b.t)} }

// Exp, Log: element-wise.
func (g *GContext) Exp(a Tensor) Tensor { return Tensor{C.ggml_exp(g.c, a.t)} }
func (g *GContext) Log(a Tensor) Tensor { return Tensor{C.ggml_log(g.c, a.t)} }

// SumRows sums along dim 0; Sum sums everything to a scalar.
func (g *GContext) SumRows(a Tensor) Tensor { return Tensor{C.ggml_sum_rows(g.c, a.t)} }
func (g *GContext) Sum(a Tensor) Tensor     { return Tensor{C.ggml_sum(g.c, a.t)} }

// Reshape4D views a contiguous tensor with a new 4-D shape.
func (g *GContext) Reshape4D(a Tensor, ne0, ne1, ne2, ne3 int64) Tensor {
	return Tensor{C.ggml_reshape_4d(g.c, a.t, C.int64_t(ne0), C.int64_t(ne1), C.int64_t(ne2), C.int64_t(ne3))}
}

// Repeat4D tiles a to the shape ne0 x ne1 x ne2 x ne3 (each dimension a multiple of a's).
func (g *GContext) Repeat4D(a Tensor, ne0, ne1, ne2, ne3 int64) Tensor {
	return Tensor{C.ggml_repeat_4d(g.c, a.t, C.int64_t(ne0), C.int64_t(ne1), C.int64_t(ne2), C.int64_t(ne3))}
}

// View1D views ne0 elements of a starting at byte offset.
func (g *GContext) View1D(a Tensor, ne0, offset int64) Tensor {
	return Tensor{C.ggml_view_1d(g.c, a.t, C.int64_t(ne0), C.size_t(offset))}
}

// SplitAt cuts the graph that runs (after any rewrite) into the nodes before t and the nodes from t on,
// so a caller can read results and set inputs between the two parts (see Scheduler.ComputePart).
func (gr *Graph) SplitAt(g *GContext, t Tensor) (before, from *Graph, err error) {
	run := gr.run()
	i := int(C.bpo_node_index(run, t.t))
	if i < 0 {
		return nil, nil, fmt.Errorf("ggml: split: %s is not a node of the graph", t.Name())
	}
	n := int(C.ggml_graph_n_nodes(run))
	return &Graph{g: C.bpo_subgraph(g.c, run, 0, C.int(i))}, &Graph{g: C.bpo_subgraph(g.c, run, C.int(i), C.int(n))}, nil
}

// ComputePart runs a part of a graph that Alloc allocated as a whole, on the scheduler's only backend.
// Parts must run in order. It fails when the scheduler has several backends (splits would be needed).
func (s *Scheduler) ComputePart(part *Graph) error {
	if len(s.backends) != 1 {
		return fmt.Errorf("ggml: %w: graph parts need a single-backend scheduler", ErrInvalidArgument)
	}
	s.adaptThreads()
	if st := C.ggml_backend_graph_compute(s.backends[0], part.g); st != C.GGML_STATUS_SUCCESS {
		return fmt.Errorf("ggml: graph compute failed with status %d", int(st))
	}
	return nil
}

// Ops of the hand-written backward pass (see trainblock.go).

// View4D views ne0 x ne1 x ne2 x ne3 elements of a at byte offset with strides nb1, nb2, nb3.
func (g *GContext) View4D(a Tensor, ne0, ne1, ne2, ne3, nb1, nb2, nb3, offset int64) Tensor {
	return Tensor{C.ggml_view_4d(g.c, a.t, C.int64_t(ne0), C.int64_t(ne1), C.int64_t(ne2), C.int64_t(ne3),
		C.size_t(nb1), C.size_t(nb2), C.size_t(nb3), C.size_t(offset))}
}

// Concat joins a and b along dimension dim.
func (g *GContext) Concat(a, b Tensor, dim int) Tensor {
	return Tensor{C.ggml_concat(g.c, a.t, b.t, C.int(dim))}
}

// Pad appends p1 zero rows along dimension 1.
func (g *GContext) PadRows(a Tensor, p1 int64) Tensor {
	return Tensor{C.ggml_pad(g.c, a.t, 0, C.int(p1), 0, 0)}
}

// Silu is x * sigmoid(x); SiluBack(dy, x) is its gradient dy * silu'(x).
func (g *GContext) Silu(a Tensor) Tensor         { return Tensor{C.ggml_silu(g.c, a.t)} }
func (g *GContext) SiluBack(dy, x Tensor) Tensor { return Tensor{C.ggml_silu_back(g.c, dy.t, x.t)} }

// RopeBack is the gradient of Rope with the same settings, applied to the output gradient a.
func (g *GContext) RopeBack(a, pos, freqFactors Tensor, nDims, mode, nCtxOrig int, base, scale float32) Tensor {
	return Tensor{C.ggml_rope_ext_back(g.c, a.t, pos.t, freqFactors.t, C.int(nDims), C.int(mode), C.int(nCtxOrig),
		C.float(base), C.float(scale), 0, 1, 32, 1)}
}

// GetRowsBack scatters the rows of a (the gradient of GetRows(like, rows)) into a zero tensor shaped like like.
func (g *GContext) GetRowsBack(a, rows, like Tensor) Tensor {
	checkGetRowsBack(a, rows, like, g.portable)
	if g.portable {
		return g.portableGetRowsBack(a, rows, like)
	}
	return Tensor{C.ggml_get_rows_back(g.c, a.t, rows.t, like.t)}
}

// TransposeF32 is cont(transpose(a)) of an F32 tensor, in cache-friendly tiles (a custom CPU op).
func (g *GContext) TransposeF32(a Tensor) Tensor {
	if g.portable {
		return g.transposeCont(a)
	}
	return Tensor{C.bpo_transpose(g.c, a.t)}
}

// LowRank is a [n, r] times b [r, T] for a small inner dimension r (a LoRA rank), as [n, T]. a and b
// must be contiguous 2-D F32 tensors (see bpo_low_rank_f32).
func (g *GContext) LowRank(a, b Tensor) Tensor {
	if !lowRankOperand(a) || !lowRankOperand(b) || a.Ne(1) != b.Ne(0) {
		panic(fmt.Sprintf("ggml: LowRank of %s and %s: want contiguous 2-D F32 [n, r] and [r, T]", a.describe(), b.describe()))
	}
	if g.portable {
		return g.portableLowRank(a, b)
	}
	return Tensor{C.bpo_low_rank(g.c, a.t, b.t)}
}

// OutProdBlocked is OutProd(a, b) for F32 a [n, T, A2, A3] and b [r, T, B2, B3] whose rows are
// contiguous (views with any row and batch strides are fine): dst [n, r, B2, B3], dst[i, k] = sum_t
// a[i, t] b[k, t] per batch, computed in register blocks (see bpo_out_prod_f32). As in MulMat, a's batch
// may be broadcast: A2 divides B2 and batch j of b uses batch j / (B2 / A2) of a (grouped-query heads).
func (g *GContext) OutProdBlocked(a, b Tensor) Tensor {
	if a.Type() != TypeF32 || b.Type() != TypeF32 || a.Nb(0) != 4 || b.Nb(0) != 4 || a.Ne(1) != b.Ne(1) ||
		b.Ne(2)%a.Ne(2) != 0 || b.Ne(3)%a.Ne(3) != 0 {
		panic(fmt.Sprintf("ggml: OutProdBlocked of %s and %s: want F32 [n, T, A2, A3] and [r, T, B2, B3] with contiguous rows, A2 | B2, A3 | B3", a.describe(), b.describe()))
	}
	if g.portable {
		return g.portableOutProd(a, b)
	}
	return Tensor{C.bpo_out_prod(g.c, a.t, b.t)}
}

// SwigluBack is the backward pass of SwigluSplit(a, b) = silu(a) * b given the output gradient dm:
// da and db (see bpo_swiglu_back_f32). dm, a and b must be contiguous 2-D F32 tensors of one shape.
func (g *GContext) SwigluBack(dm, a, b Tensor) (da, db Tensor) {
	if !lowRankOperand(dm) || !lowRankOperand(a) || !lowRankOperand(b) || !sameShape(dm, a) || !sameShape(dm, b) {
		panic(fmt.Sprintf("ggml: SwigluBack of %s, %s and %s: want contiguous 2-D F32 tensors of one shape", dm.describe(), a.describe(), b.describe()))
	}
	if g.portable {
		return g.portableSwigluBack(dm, a, b)
	}
	both := Tensor{C.bpo_swiglu_back(g.c, dm.t, a.t, b.t)}
	n, T := dm.Ne(0), dm.Ne(1)
	return g.View2D(both, n, T, both.Nb(1), 0), g.View2D(both, n, T, both.Nb(1), both.Nb(2))
}

// GegluTanh is gelu(a) * b with GELU in its exact tanh form (Gemma's gated FFN), computed with tanhf
// rather than ggml_geglu's F16 table so that it is differentiable. a and b must be contiguous 2-D F32
// tensors of one shape.
func (g *GContext) GegluTanh(a, b Tensor) Tensor {
	if !lowRankOperand(a) || !lowRankOperand(b) || !sameShape(a, b) {
		panic(fmt.Sprintf("ggml: GegluTanh of %s and %s: want contiguous 2-D F32 tensors of one shape",
			a.describe(), b.describe()))
	}
	if g.portable {
		return g.portableGegluTanh(a, b)
	}
	return Tensor{C.bpo_geglu_tanh(g.c, a.t, b.t)}
}

// GegluTanhBack is the backward pass of GegluTanh(a, b) given the output gradient dm: da and db.
func (g *GContext) GegluTanhBack(dm, a, b Tensor) (da, db Tensor) {
	if !lowRankOperand(dm) || !lowRankOperand(a) || !lowRankOperand(b) || !sameShape(dm, a) || !sameShape(dm, b) {
		panic(fmt.Sprintf("ggml: GegluTanhBack of %s, %s and %s: want contiguous 2-D F32 tensors of one shape",
			dm.describe(), a.describe(), b.describe()))
	}
	if g.portable {
		return g.portableGegluTanhBack(dm, a, b)
	}
	both := Tensor{C.bpo_geglu_tanh_back(g.c, dm.t, a.t, b.t)}
	n, T := dm.Ne(0), dm.Ne(1)
	return g.View2D(both, n, T, both.Nb(1), 0), g.View2D(both, n, T, both.Nb(1), both.Nb(2))
}

// sameShape reports whether a and b have the same shape.
func sameShape(a, b Tensor) bool {
	return a.Ne(0) == b.Ne(0) && a.Ne(1) == b.Ne(1) && a.Ne(2) == b.Ne(2) && a.Ne(3) == b.Ne(3)
}

// lowRankOperand reports whether t is a contiguous 2-D F32 tensor.
func lowRankOperand(t Tensor) bool {
	return t.Type() == TypeF32 && t.Ne(2) == 1 && t.Ne(3) == 1 && bool(C.ggml_is_contiguous(t.t))
}

// describe is t's type and shape, for messages.
func (t Tensor) describe() string {
	return fmt.Sprintf("%s [%d %d %d %d]", t.Type(), t.Ne(0), t.Ne(1), t.Ne(2), t.Ne(3))
}

// SoftMaxBack is the gradient of SoftMaxExt(x, mask, scale) given its output y and output gradient dy.
func (g *GContext) SoftMaxBack(dy, y Tensor, scale float32) Tensor {
	if g.portable {
		return g.portableSoftMaxBack(dy, y, scale)
	}
	return Tensor{C.bpo_softmax_back(g.c, dy.t, y.t, C.float(scale))}
}

// RMSNormBack is the gradient of RMSNorm(x, eps) given the output gradient dz.
func (g *GContext) RMSNormBack(dz, x Tensor, eps float32) Tensor {
	if g.portable {
		return g.portableRMSNormBack(dz, x, eps)
	}
	return Tensor{C.bpo_rms_norm_back(g.c, dz.t, x.t, C.float(eps))}
}

// TokenLogProbs returns, for each column c of logits [V, C], log softmax(logits[:, c])[targets[c]], given
// softmax = SoftMax(logits) and I32 targets [C]. A target outside [0, V) gives NaN; in a portable context
// targets must lie in [0, V) (the caller validates them).
func (g *GContext) TokenLogProbs(logits, softmax, targets Tensor) Tensor {
	checkTokenLogProbs(logits, softmax, targets)
	if g.portable {
		return g.portableTokenLogProbs(logits, softmax, targets)
	}
	return Tensor{C.bpo_token_logp(g.c, logits.t, softmax.t, targets.t)}
}

// SoftMax is softmax along dimension 0.
func (g *GContext) SoftMax(a Tensor) Tensor { return Tensor{C.ggml_soft_max(g.c, a.t)} }

// CPUHasBF16 reports whether the CPU multiplies BF16 natively (AVX-512 BF16) in this build.
func CPUHasBF16() bool { return C.ggml_cpu_has_avx512_bf16() != 0 }

// SetBytesAt copies raw data into the tensor starting at byte offset.
func (t Tensor) SetBytesAt(b []byte, offset int64) error {
	if offset < 0 || offset+int64(len(b)) > t.Bytes() {
		return fmt.Errorf("ggml: set %s: %w: %d bytes at offset %d of a tensor of %d bytes", t.Name(), ErrInvalidArgument, len(b), offset, t.Bytes())
	}
	if len(b) > 0 {
		C.ggml_backend_tensor_set(t.t, unsafe.Pointer(&b[0]), C.size_t(offset), C.size_t(len(b)))
	}
	return nil
}

// OutProd is sum_k a[:, k] b[:, k]^T: a [m, k] and b [n, k] give [m, n] (the contraction runs over
// dimension 1 of both).
func (g *GContext) OutProd(a, b Tensor) Tensor { return Tensor{C.ggml_out_prod(g.c, a.t, b.t)} }
