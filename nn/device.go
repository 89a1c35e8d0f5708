package nn

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bpo-dev/bpo/ggml"
)

// deviceArchitectures are the architectures whose training graph has been compared with the CPU on a
// device (ggml-vulkan on lavapipe). qwen3 and gemma3 are not among them: their LoRA forward graph
// with the weights on Vulkan corrupted the host heap (lavapipe's device memory is host memory) in every
// run ("corrupted double-linked list", or SIGSEGV, inside ggml_backend_sched_graph_compute); qwen3's
// did so also with its QK-norm left out and with GGML_VK_DISABLE_FUSION=1, while qwen2 (the same graph
// with Q/K/V biases) and stories260K match the CPU. ggml's rms_norm+mul over heads alone matches the
// CPU on Vulkan. The cause is not located yet.
var deviceArchitectures = []string{"llama", "qwen2"}

// trainBackends starts the backends of a TrainModel: the one that holds its weights and LoRA tensors
// (opts.Device; "" or "cpu" for the CPU) and the CPU backend, which is the same one when the device is
// the CPU. On another device it first checks that the architecture's graph is known to run there, that
// the training is LoRA (full-parameter training runs on the CPU only) and that the model file's
// weights fit the device's free memory.
func trainBackends(f *ggml.GGUFFile, arch string, opts TrainOptions) (main, cpu *ggml.Backend, err error) {
	dev, err := ggml.ResolveDevice(opts.Device)
	if err != nil {
		return nil, nil, err
	}
	if !dev.IsCPU() {
		if opts.FullParams {
			return nil, nil, fmt.Errorf("%w: full-parameter training runs on the CPU only (LoRA training runs on %s)", ggml.ErrDevice, strings.ToLower(dev.Name))
		}
		if !slices.Contains(deviceArchitectures, arch) {
			return nil, nil, fmt.Errorf("%w: the %s training graph does not run on %s yet (it corrupted memory on ggml-vulkan); devices take %s; use the CPU",
				ggml.ErrDevice, arch, strings.ToLower(dev.Name), strings.Join(deviceArchitectures, ", "))
		}
		var weights uint64
		for _, t := range f.Tensors {
			weights += uint64(t.Size)
		}
		if err := ggml.CheckDeviceMemory(dev, weights); err != nil {
			return nil, nil, err
		}
	}
	if cpu, err = ggml.NewCPUBackend(opts.Threads); err != nil {
		return nil, nil, err
	}
	if dev.IsCPU() {
		return cpu, cpu, nil
	}
	if main, err = ggml.NewDeviceBackend(dev.Name, opts.Threads); err != nil {
		cpu.Free()
		return nil, nil, err
	}
	return main, cpu, nil
}

// onDevice reports whether the model's tensors live on a device other than the CPU.
func (tm *TrainModel) onDevice() bool { return tm.backend != tm.cpu }

// schedBackends are the scheduler's backends: the device first when there is one (ggml's scheduler
// prefers earlier backends), the CPU last, for the ops the device lacks (the custom CPU ops).
func (tm *TrainModel) schedBackends() []*ggml.Backend {
	if !tm.onDevice() {
		return []*ggml.Backend{tm.cpu}
	}
	return []*ggml.Backend{tm.backend, tm.cpu}
}

// TrainDevice is the device that holds the model's weights and LoRA tensors.
func (tm *TrainModel) TrainDevice() ggml.DeviceInfo { return tm.backend.Device() }

// runStepOnDevice is runStep on a scheduler with a device and the CPU. It computes log-probs only,
// one sequence at a time, and refuses gradients. What was measured on ggml-vulkan (lavapipe, before
// the split of package llama into ggml / llama / nn):
//   - one sequence per graph: log-probs match the CPU to 1.9e-5, in every run;
//   - several sequences per graph: every batch element after the first is wrong, differently in each
//     run (8.0 apart from the CPU on stories260K), although each op of the graph alone (mul_mat with
//     GQA broadcast and views, soft_max with mask, rope, rms_norm, cont of 4-D permutes, get_rows)
//     matches the CPU;
//   - gradients, one sequence per graph (forward-only graph for the row weights, then the whole
//     graph, since a split schedule cannot be computed in two parts): LoRA-A gradients match, LoRA-B
//     ones (B-grad = u^T dy, u = A x) are NaN or wrong in most runs and right (7.6e-6) in some. Not
//     fixed by GGML_VK_DISABLE_FUSION, GGML_VK_DISABLE_ASYNC, a 4x larger scheduler, keeping u as a
//     graph output, or ggml's cont(transpose) instead of the custom CPU transpose. Run-to-run changes
//     point at memory read before it is written somewhere in the split schedule; not located yet.
func (tm *TrainModel) runStepOnDevice(p *batchPlan, rowWeights func(logp []float32) ([]float32, error)) ([]float32, error) {
	if rowWeights != nil {
		return nil, fmt.Errorf("train step: %w: gradients on %s do not match the CPU yet (LoRA-B gradients come out wrong); train on the CPU", ggml.ErrDevice, strings.ToLower(tm.backend.Device().Name))
	}
	var logp []float32
	for s := range p.B {
		lp, err := tm.runStep(p.sequence(s), nil)
		if err != nil {
			return nil, err
		}
		logp = append(logp, lp...)
	}
	return logp, nil
}

// sequence is the plan of sequence s of p alone (a batch of one, same padded length).
func (p *batchPlan) sequence(s int) *batchPlan {
	L := p.L
	q := &batchPlan{L: L, B: 1, tokens: p.tokens[s*L : (s+1)*L], pos: p.pos[s*L : (s+1)*L], counts: []int{p.counts[s]}}
	for r, so := range p.seqOf {
		if so == s {
			q.rows = append(q.rows, p.rows[r]-int32(s*L))
			q.targets = append(q.targets, p.targets[r])
			q.seqOf = append(q.seqOf, 0)
		}
	}
	return q
}
