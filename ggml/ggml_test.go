package ggml

import (
	"math"
	"testing"
)

// microCheck compares the gradient of sum(f(A, x) * w) w.r.t. A with central finite differences.
func microCheck(t *testing.T, name string, f func(g *GContext, A, x Tensor) (Tensor, func())) {
	be, _ := NewCPUBackend(1)
	defer be.Free()
	pctx := NewGContext(4, 0, false)
	A := pctx.NewTensor(TypeF32, 4, 4).SetName("A")
	buf, _ := be.AllocTensors(pctx)
	defer buf.Free()
	av := make([]float32, 16)
	for i := range av {
		av[i] = float32(math.Sin(float64(i)*1.3)) * 0.7
	}
	A.SetFloat32(av)
	A.SetParam()
	sched, _ := NewScheduler(512, be)
	xv := make([]float32, 12)
	for i := range xv {
		xv[i] = float32(math.Cos(float64(i) * 0.7))
	}
	eval := func(grad, fastOuter bool) (float64, []float32) {
		g := NewGContext(1200, 1024, grad)
		defer g.Free()
		x := g.NewTensor(TypeF32, 4, 3).SetName("x")
		x.SetInput()
		y, setInputs := f(g, A, x)
		w := g.NewTensor(TypeF32, y.Ne(0), y.Ne(1), y.Ne(2)).SetName("w")
		w.SetInput()
		loss := g.Sum(g.Mul(y, w))
		loss.SetOutput()
		gr := g.NewGraph(512, grad)
		var ga Tensor
		if grad {
			loss.SetLoss()
			gr.Expand(loss)
			gr.BuildBackward(g)
			if fastOuter {
				gr.FastOuterProducts(g, 512)
			}
			ga = gr.Grad(A)
			ga.SetOutput()
		} else {
			gr.Expand(loss)
		}
		if err := sched.Alloc(gr); err != nil {
			t.Fatal(err)
		}
		x.SetFloat32(xv)
		if setInputs != nil {
			setInputs()
		}
		wv := make([]float32, w.Elements())
		for i := range wv {
			wv[i] = float32(math.Sin(float64(i)*0.37 + 1))
		}
		w.SetFloat32(wv)
		if grad {
			gr.Reset()
		}
		sched.Compute(gr)
		l := float64(loss.Float32(nil)[0])
		if grad {
			return l, ga.Float32(nil)
		}
		return l, nil
	}
	for _, fastOuter := range []bool{false, true} {
		_, g := eval(true, fastOuter)
		worst := 0.0
		for j := 0; j < 16; j++ {
			o := av[j]
			av[j] = o + 1e-2
			A.SetFloat32(av)
			u, _ := eval(false, false)
			av[j] = o - 1e-2
			A.SetFloat32(av)
			d, _ := eval(false, false)
			av[j] = o
			A.SetFloat32(av)
			fd := (u - d) / 2e-2
			worst = math.Max(worst, math.Abs(fd-float64(g[j]))/math.Max(1e-2, math.Abs(fd)))
		}
		t.Logf("%-20s fast outer products %-5v worst rel err %.3g", name, fastOuter, worst)
		if worst > 5e-3 {
			t.Errorf("%s (fast outer products %v): gradient differs from finite differences by %.3g (relative)", name, fastOuter, worst)
		}
	}
	sched.Free()
}

// TestOpGradients checks ggml's backward of every op the training graphs use, through our scheduler path.
// rms_norm caught a real ggml bug (in-place RMS_NORM_BACK aliasing its input gradient; see BuildBackward).
func TestOpGradients(t *testing.T) {
	microCheck(t, "mulmat", func(g *GContext, A, x Tensor) (Tensor, func()) { return g.MulMat(A, x), nil })
	microCheck(t, "mulmat-mulmat", func(g *GContext, A, x Tensor) (Tensor, func()) { return g.MulMat(A, g.MulMat(A, x)), nil })
	microCheck(t, "rmsnorm", func(g *GContext, A, x Tensor) (Tensor, func()) { return g.RMSNorm(g.MulMat(A, x), 1e-5), nil })
	microCheck(t, "scale-add", func(g *GContext, A, x Tensor) (Tensor, func()) { return g.Add(x, g.Scale(g.MulMat(A, x), 2)), nil })
	microCheck(t, "swiglu", func(g *GContext, A, x Tensor) (Tensor, func()) {
		y := g.MulMat(A, x)
		return g.SwigluSplit(y, g.Scale(y, 0.5)), nil
	})
	microCheck(t, "getrows", func(g *GContext, A, x Tensor) (Tensor, func()) {
		rows := g.NewTensor(TypeI32, 2)
		rows.SetInput()
		return g.GetRows(g.MulMat(A, x), rows), func() { rows.SetInt32([]int32{2, 0}) }
	})
	microCheck(t, "softmax", func(g *GContext, A, x Tensor) (Tensor, func()) {
		return g.SoftMaxExt(g.MulMat(A, x), Tensor{}, 0.5), nil
	})
	microCheck(t, "exp-log", func(g *GContext, A, x Tensor) (Tensor, func()) { return g.Log(g.SumRows(g.Exp(g.MulMat(A, x)))), nil })
	microCheck(t, "mul-self", func(g *GContext, A, x Tensor) (Tensor, func()) { y := g.MulMat(A, x); return g.Mul(y, y), nil })
}
