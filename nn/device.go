package nn

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bpo-dev/bpo/ggml"
)

// deviceArchitectures are the architectures whose training graph (log-probs and LoRA gradients) has
// been compared with the CPU on a device (ggml-vulkan on lavapipe: TestVulkanTrainStepMatchesCPU); a
// new architecture is refused on devices until it is. qwen3 and gemma3 were refused while their graphs
// corrupted the host heap there: that was ggml-vulkan's destroyed-buffer hazard (see
// renewDeviceBackend), not their ops.
var deviceArchitectures = []string{"llama", "qwen2", "qwen3", "gemma3"}

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
			return nil, nil, fmt.Errorf("%w: the %s training graph has not been checked against the CPU on %s; devices take %s; use the CPU",
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
// prefers earlier backends), the CPU last: it holds the step's inputs and runs what the device lacks
// (on a device the graph is portable, so that is views of the inputs and the node pinned there by
// runStepOnDevice).
func (tm *TrainModel) schedBackends() []*ggml.Backend {
	if !tm.onDevice() {
		return []*ggml.Backend{tm.cpu}
	}
	return []*ggml.Backend{tm.backend, tm.cpu}
}

// TrainDevice is the device that holds the model's weights and LoRA tensors.
func (tm *TrainModel) TrainDevice() ggml.DeviceInfo { return tm.backend.Device() }

// renewDeviceBackend replaces the device backend by a new one on the same device; ensureScheduler
// does so for every step's scheduler on a device. On ggml-vulkan (lavapipe, Mesa 22.3.6) a backend
// must not run a graph after one of the device buffers it has used was destroyed: the scheduler's
// compute buffer when a larger graph needs a larger one (freed with the old scheduler, or regrown by
// ggml's allocator), or ggml-vulkan's own scratch buffers, which it regrows in the middle of a graph.
// That graph corrupted the host heap in lavapipe's queue thread ("corrupted double-linked list",
// "double free or corruption"): in every run of a forward step over 1 then 3 sequences, and at the
// second of 12 LoRA steps of varying batches, also with an 8x larger scheduler that never regrew, and
// with ggml-vulkan's fusion or graph reordering turned off. A new backend each step (and so new
// descriptor sets: ggml-vulkan reuses its descriptor sets from graph to graph, and lavapipe reads the
// buffers they last pointed to when they are rewritten) ran 12 of 12 steps in each of 3 runs. The
// weights and LoRA tensors are device buffers, not the backend's, and stay where they are.
func (tm *TrainModel) renewDeviceBackend() error {
	b, err := ggml.NewDeviceBackend(tm.backend.Device().Name, 1)
	if err != nil {
		return fmt.Errorf("train model %s: %w", tm.path, err)
	}
	tm.backend.Free()
	tm.backend = b
	return nil
}

// runStepOnDevice is runStep on a scheduler with a device and the CPU. The forward and backward parts
// cannot run as two graphs there (ggml's scheduler splits a graph over the backends as a whole), so the
// whole graph runs once, paused right after the log-probs are computed (Scheduler.ComputePaused) to
// ask rowWeights for the row weights and set them. The first node that reads them is pinned to the
// CPU, where the row-weight input lives: a node on the device would get a copy of it made at the start
// of its split, and that split may begin before the log-probs are done.
func (tm *TrainModel) runStepOnDevice(p *batchPlan, rowWeights func(logp []float32) ([]float32, error)) ([]float32, error) {
	sg, err := tm.buildStep(p, true)
	if err != nil {
		return nil, err
	}
	defer sg.ctx.Free()
	if err := tm.sched.Alloc(sg.gr, ggml.Pin{Node: sg.split, Backend: tm.cpu}); err != nil {
		return nil, fmt.Errorf("%w (sequences of %d tokens x %d on %s: use shorter sequences or fewer pairs per micro-batch)", err, p.L, p.B, strings.ToLower(tm.backend.Device().Name))
	}
	if err := tm.setStepInputs(sg, p); err != nil {
		return nil, err
	}
	var logp []float32
	err = tm.sched.ComputePaused(sg.gr, sg.logp, func() error {
		logp = sg.logp.Float32(nil)
		w, err := rowWeights(logp)
		if err != nil {
			return err
		}
		return sg.rowWeight.SetFloat32(w)
	})
	if err != nil {
		return nil, err
	}
	return logp, tm.addGradTensors(sg.grads)
}
