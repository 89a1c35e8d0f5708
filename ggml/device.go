package ggml

/*
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include "ggml-backend.h"

// A backend library brings its own copy of libggml-base (bpo's is compiled in), with its own log
// callback that prints everything to stderr. bpo_quiet_base_log routes that copy's log through the same
// rule as bpo's own (errors only unless BPO_LLAMA_LOG is set).
static int bpo_base_log_verbose = 0;
static void bpo_base_log(enum ggml_log_level level, const char * text, void * user_data) {
	(void) user_data;
	if (bpo_base_log_verbose || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}
static int bpo_quiet_base_log(const char * base_path, int verbose) {
	void * h = dlopen(base_path, RTLD_NOW | RTLD_LOCAL); // kept open: the backend library uses it
	if (!h) return 0;
	void (*set)(ggml_log_callback, void *) = (void (*)(ggml_log_callback, void *)) dlsym(h, "ggml_log_set");
	if (set) { bpo_base_log_verbose = verbose; set(bpo_base_log, NULL); }
	return set != NULL;
}

static const char * bpo_dev_name(size_t i) { return ggml_backend_dev_name(ggml_backend_dev_get(i)); }
static const char * bpo_dev_description(size_t i) { return ggml_backend_dev_description(ggml_backend_dev_get(i)); }
static const char * bpo_dev_backend(size_t i) { return ggml_backend_reg_name(ggml_backend_dev_backend_reg(ggml_backend_dev_get(i))); }
static int bpo_dev_type(size_t i) { return (int) ggml_backend_dev_type(ggml_backend_dev_get(i)); }
static void bpo_dev_memory(size_t i, size_t * free, size_t * total) { ggml_backend_dev_memory(ggml_backend_dev_get(i), free, total); }

// bpo_ggml_abi describes the ggml this file is compiled against: the sizes and counts that change when
// ggml's structs, ops or types change. scripts/build-vulkan.sh prints the same line with the headers the
// backend library is compiled with, into its stamp file.
static int bpo_ggml_abi(char * buf, size_t n) {
	return snprintf(buf, n, "ggml abi: tensor=%zu ops=%d unary=%d glu=%d types=%d dims=%d src=%d name=%d params=%d",
		sizeof(struct ggml_tensor), (int) GGML_OP_COUNT, (int) GGML_UNARY_OP_COUNT, (int) GGML_GLU_OP_COUNT,
		(int) GGML_TYPE_COUNT, GGML_MAX_DIMS, GGML_MAX_SRC, GGML_MAX_NAME, GGML_MAX_OP_PARAMS);
}
*/
import "C"

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// BackendStampFile is the file that `make vulkan` (scripts/build-vulkan.sh) writes next to the backend
// libraries it builds. Its first line describes the ggml headers they were compiled with (see
// BackendStamp); bpo loads a backend library only when that line matches the ggml compiled into bpo,
// because ggml passes its structs between the two with no check beyond a small API number.
const BackendStampFile = "bpo-backend-stamp.txt"

// DeviceInfo describes one ggml device (the CPU, or a device of a loaded backend library).
type DeviceInfo struct {
	// Name is ggml's device name, e.g. "CPU" or "Vulkan0"; flags use it lower-cased.
	Name        string `json:"name"`
	Description string `json:"description"`
	// Backend is the ggml backend the device belongs to, e.g. "CPU", "Vulkan", "CUDA".
	Backend string `json:"backend"`
	// Type is "cpu", "gpu", "igpu" (integrated GPU) or "accel".
	Type       string `json:"type"`
	FreeBytes  uint64 `json:"free_bytes"`
	TotalBytes uint64 `json:"total_bytes"`
}

// IsCPU reports whether the device is ggml's CPU backend (the one compiled into bpo).
func (d DeviceInfo) IsCPU() bool { return d.Type == "cpu" }

// cpuDevice is the DeviceInfo of a CPU backend made by NewCPUBackend.
var cpuDevice = DeviceInfo{Name: "CPU", Backend: "CPU", Type: "cpu"}

// loadedBackends records which backend libraries this process loaded: ggml's device registry is
// per process, so this record is too.
var loadedBackends = struct {
	sync.Mutex
	paths map[string]bool // absolute library path -> loaded
}{paths: map[string]bool{}}

// backendLibraryNames are the loadable ggml backends bpo knows how to build (make vulkan; cuda later).
var backendLibraryNames = []string{"vulkan", "cuda"}

// BackendDirs returns the folders searched for backend libraries, in order: dir alone when not empty,
// else the folders of the environment variable BPO_BACKEND_DIR, else the executable's folder and the
// build folders of `make vulkan` / `make cuda` next to it (../build/<backend>/lib/ollama, for bin/bpo
// in a checkout).
func BackendDirs(dir string) []string {
	if dir != "" {
		return []string{dir}
	}
	if env := os.Getenv("BPO_BACKEND_DIR"); env != "" {
		return filepath.SplitList(env)
	}
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		exeDir := filepath.Dir(exe)
		dirs = append(dirs, exeDir)
		for _, b := range backendLibraryNames {
			dirs = append(dirs, filepath.Join(exeDir, "..", "build", b, "lib", "ollama"))
		}
	}
	return dirs
}

// FindBackendLibraries returns the backend libraries (libggml-<backend>.so) found in dirs, the first
// folder that has a backend winning for it.
func FindBackendLibraries(dirs []string) []string {
	var libs []string
	found := map[string]bool{}
	for _, d := range dirs {
		for _, b := range backendLibraryNames {
			if found[b] {
				continue
			}
			p := filepath.Join(d, "libggml-"+b+".so")
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				found[b] = true
				libs = append(libs, p)
			}
		}
	}
	return libs
}

// LoadBackend loads one ggml backend library (libggml-vulkan.so, libggml-cuda.so) into this process
// and registers its devices, once per library. Before anything reaches C it checks that the file is a
// shared library for this machine that exports ggml_backend_init and that the stamp file next to it
// names the ggml bpo was built with; a library from another build is refused with an error that says
// how to rebuild it. Every failure is an ErrDevice.
//
// It also sets LP_NUM_THREADS=1 in the environment when it is not set (see serialLavapipe), before the
// library enumerates its devices.
func LoadBackend(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("load backend %s: %w", path, err)
	}
	loadedBackends.Lock()
	defer loadedBackends.Unlock()
	if loadedBackends.paths[abs] {
		return nil
	}
	if err := checkBackendLibrary(abs); err != nil {
		return err
	}
	if err := serialLavapipe(); err != nil {
		return fmt.Errorf("load backend %s: %w", abs, err)
	}
	Init()
	if base, err := filepath.EvalSymlinks(filepath.Join(filepath.Dir(abs), "libggml-base.so")); err == nil {
		verbose := 0
		if os.Getenv("BPO_LLAMA_LOG") != "" {
			verbose = 1
		}
		cbase := C.CString(base)
		C.bpo_quiet_base_log(cbase, C.int(verbose))
		C.free(unsafe.Pointer(cbase))
	}
	cpath := C.CString(abs)
	defer C.free(unsafe.Pointer(cpath))
	if reg := C.ggml_backend_load(cpath); reg == nil {
		return fmt.Errorf("load backend %s: %w: ggml could not load it (a missing dependency such as libvulkan.so.1 or libggml-base.so, or not a ggml backend of this ggml version; set BPO_LLAMA_LOG=1 for ggml's message)", abs, ErrDevice)
	}
	loadedBackends.paths[abs] = true
	return nil
}

// serialLavapipe makes Mesa's software Vulkan device (lavapipe, llvmpipe) run one workgroup at a time,
// by setting LP_NUM_THREADS=1 unless the user set it; other Vulkan drivers ignore the variable. With its
// default thread pool, lavapipe (Mesa 22.3.6 here) computes ggml-vulkan's tiled matrix product wrong
// whenever the product has more than one workgroup of output columns (more than 32 tokens): whole
// 32-column tiles come out zero or partly summed, differently in each run, also for a single MUL_MAT
// node alone (TestVulkanMulMatRepeatable). Training graphs of a single short sequence had no second tile,
// which is why only batches went wrong. With one thread every product matches the CPU. Mesa reads the
// variable when the Vulkan device is created, so it must be set before the backend loads.
func serialLavapipe() error {
	if _, set := os.LookupEnv("LP_NUM_THREADS"); set {
		return nil
	}
	return os.Setenv("LP_NUM_THREADS", "1")
}

// checkBackendLibrary validates a backend library file before it is handed to dlopen.
func checkBackendLibrary(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("load backend %s: %w: no such file (build it with `make vulkan`)", path, ErrDevice)
		}
		return fmt.Errorf("load backend %s: %w: not an ELF shared library: %v", path, ErrDevice, err)
	}
	typ, machine := f.Type, f.Machine
	syms, _ := f.DynamicSymbols() // none (an error) is caught by the ggml_backend_init check below
	f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if typ != elf.ET_DYN || (want != 0 && machine != want) {
		return fmt.Errorf("load backend %s: %w: ELF type %v for %v, want a shared library (ET_DYN) for %v", path, ErrDevice, typ, machine, want)
	}
	stampPath := filepath.Join(filepath.Dir(path), BackendStampFile)
	stamp, err := os.ReadFile(stampPath)
	if err != nil {
		return fmt.Errorf("load backend %s: %w: no build stamp %s: the library was not built by `make vulkan` of this bpo, so its ggml may not match bpo's (rebuild it with make)", path, ErrDevice, stampPath)
	}
	wantStamp := BackendStamp()
	got, _, _ := strings.Cut(string(stamp), "\n")
	if got = strings.TrimSpace(got); got != wantStamp {
		return fmt.Errorf("load backend %s: %w: built from other ggml sources: stamp %s says %q, this bpo has %q (rebuild it with make)", path, ErrDevice, stampPath, got, wantStamp)
	}
	if !slices.ContainsFunc(syms, func(s elf.Symbol) bool { return s.Name == "ggml_backend_init" && s.Section != elf.SHN_UNDEF }) {
		return fmt.Errorf("load backend %s: %w: it does not export ggml_backend_init, so it is not a loadable ggml backend (built without GGML_BACKEND_DL?)", path, ErrDevice)
	}
	return nil
}

// BackendStamp is the first line a backend library's stamp file must hold for this bpo: sizes and
// counts of the ggml compiled in, e.g. "ggml abi: tensor=336 ops=95 ...".
func BackendStamp() string {
	buf := make([]byte, 256)
	n := C.bpo_ggml_abi((*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	return string(buf[:min(int(n), len(buf)-1)])
}

// LoadBackends loads every backend library found in BackendDirs(dir) and returns their paths. A library
// that fails to load is an error (no device silently missing), and so is a dir with no library in it.
func LoadBackends(dir string) ([]string, error) {
	libs := FindBackendLibraries(BackendDirs(dir))
	if dir != "" && len(libs) == 0 {
		return nil, fmt.Errorf("backend dir %s: %w: no libggml-<backend>.so in it (build one with `make vulkan`)", dir, ErrDevice)
	}
	for _, l := range libs {
		if err := LoadBackend(l); err != nil {
			return nil, err
		}
	}
	return libs, nil
}

// Devices lists the ggml devices of this process: the CPU and those of the loaded backend libraries.
func Devices() []DeviceInfo {
	Init()
	n := int(C.ggml_backend_dev_count())
	devs := make([]DeviceInfo, 0, n)
	for i := range n {
		var free, total C.size_t
		C.bpo_dev_memory(C.size_t(i), &free, &total)
		devs = append(devs, DeviceInfo{
			Name:        C.GoString(C.bpo_dev_name(C.size_t(i))),
			Description: C.GoString(C.bpo_dev_description(C.size_t(i))),
			Backend:     C.GoString(C.bpo_dev_backend(C.size_t(i))),
			Type:        deviceTypeName(int(C.bpo_dev_type(C.size_t(i)))),
			FreeBytes:   uint64(free),
			TotalBytes:  uint64(total),
		})
	}
	return devs
}

func deviceTypeName(t int) string {
	switch t {
	case C.GGML_BACKEND_DEVICE_TYPE_CPU:
		return "cpu"
	case C.GGML_BACKEND_DEVICE_TYPE_GPU:
		return "gpu"
	case C.GGML_BACKEND_DEVICE_TYPE_IGPU:
		return "igpu"
	default:
		return "accel"
	}
}

// ResolveDevice turns a --device value into a device: "cpu" (or "") is the CPU; "auto" is the first
// GPU of the loaded backends, else the CPU; anything else is a ggml device name such as "vulkan0" or
// "CUDA1" (case-insensitive). An unknown name is an ErrDevice that lists the devices there are.
func ResolveDevice(name string) (DeviceInfo, error) {
	devs := Devices()
	key := strings.ToLower(strings.TrimSpace(name))
	cpu := func() (DeviceInfo, error) {
		i := slices.IndexFunc(devs, DeviceInfo.IsCPU)
		if i < 0 {
			return DeviceInfo{}, fmt.Errorf("%w: ggml has no CPU device", ErrDevice)
		}
		return devs[i], nil
	}
	switch key {
	case "", "cpu":
		return cpu()
	case "auto":
		if i := slices.IndexFunc(devs, func(d DeviceInfo) bool { return d.Type == "gpu" || d.Type == "igpu" }); i >= 0 {
			return devs[i], nil
		}
		return cpu()
	}
	for _, d := range devs {
		if strings.ToLower(d.Name) == key {
			return d, nil
		}
	}
	names := []string{"auto", "cpu"}
	for _, d := range devs {
		if !d.IsCPU() {
			names = append(names, strings.ToLower(d.Name))
		}
	}
	hint := ""
	if len(names) == 2 {
		hint = " (no device besides the CPU: build a backend library with `make vulkan` and point --backend-dir or BPO_BACKEND_DIR at it when it is not found; Mesa's software Vulkan device is listed only with GGML_VK_VISIBLE_DEVICES=0)"
	}
	return DeviceInfo{}, fmt.Errorf("%w: unknown device %q, want one of %s%s", ErrDevice, name, strings.Join(names, ", "), hint)
}

// CheckDeviceMemory refuses work that needs more bytes than the device reports free, with an error
// that gives both figures. A device that reports no memory figures (0 total) is not checked.
func CheckDeviceMemory(dev DeviceInfo, need uint64) error {
	if dev.TotalBytes == 0 || need <= dev.FreeBytes {
		return nil
	}
	return fmt.Errorf("%w: out of device memory: the weights need %.1f MiB, %s (%s) has %.1f MiB free of %.1f MiB",
		ErrDevice, mib(need), strings.ToLower(dev.Name), dev.Description, mib(dev.FreeBytes), mib(dev.TotalBytes))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// NewDeviceBackend starts a ggml backend on the device that ResolveDevice(name) finds ("cpu" gives
// NewCPUBackend(threads)). Its tensors live in device memory; graphs run on it through a Scheduler,
// which also takes the CPU backend for the ops the device lacks.
func NewDeviceBackend(name string, threads int) (*Backend, error) {
	dev, err := ResolveDevice(name)
	if err != nil {
		return nil, err
	}
	if dev.IsCPU() {
		return NewCPUBackend(threads)
	}
	cname := C.CString(dev.Name)
	defer C.free(unsafe.Pointer(cname))
	h := C.ggml_backend_dev_by_name(cname)
	if h == nil {
		return nil, fmt.Errorf("%w: device %s disappeared from ggml's registry", ErrDevice, dev.Name)
	}
	b := C.ggml_backend_dev_init(h, nil)
	if b == nil {
		return nil, fmt.Errorf("%w: could not start a backend on %s (%s)", ErrDevice, strings.ToLower(dev.Name), dev.Description)
	}
	return &Backend{b: b, device: dev}, nil
}

// Device is the device the backend runs on (the CPU for NewCPUBackend).
func (b *Backend) Device() DeviceInfo {
	if b.device.Name == "" {
		return cpuDevice
	}
	return b.device
}
