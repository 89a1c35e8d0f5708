package ggml_test

import (
	"bufio"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/internal/vulkantest"
)

// mappedSharedLibrary returns a real shared library of this machine: the first ELF shared object
// (libc, libstdc++, ...) mapped into the test process, found in /proc/self/maps.
func mappedSharedLibrary(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.Contains(filepath.Base(fields[5]), ".so") {
			continue
		}
		if e, err := elf.Open(fields[5]); err == nil {
			typ := e.Type
			e.Close()
			if typ == elf.ET_DYN {
				return fields[5]
			}
		}
	}
	t.Fatal("no shared library mapped into the test process (/proc/self/maps)")
	return ""
}

// backendDir makes a folder with a libggml-vulkan.so made of lib's bytes (patched by patch when not
// nil) and, when stamp is not empty, a stamp file holding it.
func backendDir(t *testing.T, lib []byte, patch func([]byte), stamp string) string {
	t.Helper()
	dir := t.TempDir()
	data := append([]byte(nil), lib...)
	if patch != nil {
		patch(data)
	}
	if err := os.WriteFile(filepath.Join(dir, "libggml-vulkan.so"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if stamp != "" {
		if err := os.WriteFile(filepath.Join(dir, ggml.BackendStampFile), []byte(stamp), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDeviceErrors: unknown devices, missing or foreign libraries and too little device memory are
// ErrDevice errors that say what is wrong, found before anything reaches C (dlopen).
func TestDeviceErrors(t *testing.T) {
	so, err := os.ReadFile(mappedSharedLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	stamp := ggml.BackendStamp() + "\nsource: test\n"
	if !strings.HasPrefix(stamp, "ggml abi: tensor=") {
		t.Fatalf("BackendStamp() = %q", ggml.BackendStamp())
	}
	notELF := t.TempDir()
	if err := os.WriteFile(filepath.Join(notELF, "libggml-vulkan.so"), []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	execType := func(b []byte) { binary.LittleEndian.PutUint16(b[16:], uint16(elf.ET_EXEC)) } // e_type
	dirs := map[string]string{
		"not ELF":    notELF,
		"executable": backendDir(t, so, execType, stamp),
		"no symbol":  backendDir(t, so, nil, stamp),
		"stale":      backendDir(t, so, nil, "ggml abi: tensor=1 ops=2\nsource: github.com/ollama/ollama v0.1.0\n"),
		"no stamp":   backendDir(t, so, nil, ""),
	}
	load := func(name string) func() error {
		return func() error { return ggml.LoadBackend(filepath.Join(dirs[name], "libggml-vulkan.so")) }
	}
	cases := []struct {
		name string
		err  func() error
		want string
	}{
		{"unknown device", func() error { _, err := ggml.ResolveDevice("vulkan7"); return err }, `unknown device "vulkan7", want one of auto, cpu`},
		{"missing library", func() error { return ggml.LoadBackend(filepath.Join(t.TempDir(), "libggml-cuda.so")) }, "no such file (build it with `make vulkan`)"},
		{"not ELF", load("not ELF"), "not an ELF shared library"},
		{"executable", load("executable"), "ELF type ET_EXEC"},
		{"no ggml_backend_init", load("no symbol"), "does not export ggml_backend_init"},
		{"other ggml build", load("stale"), `built from other ggml sources: stamp`},
		{"no stamp", load("no stamp"), "no build stamp"},
		{"empty backend dir", func() error { _, err := ggml.LoadBackends(t.TempDir()); return err }, "no libggml-<backend>.so in it"},
		{"out of device memory", func() error {
			return ggml.CheckDeviceMemory(ggml.DeviceInfo{Name: "Vulkan0", Description: "test", Type: "gpu", FreeBytes: 1 << 20, TotalBytes: 2 << 20}, 3<<20)
		}, "out of device memory: the weights need 3.0 MiB, vulkan0 (test) has 1.0 MiB free of 2.0 MiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil || !errors.Is(err, ggml.ErrDevice) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrDevice containing %q", err, tc.want)
			}
		})
	}
	// What fits, and a device without memory figures, pass.
	for _, dev := range []ggml.DeviceInfo{{FreeBytes: 4 << 20, TotalBytes: 8 << 20}, {}} {
		if err := ggml.CheckDeviceMemory(dev, 3<<20); err != nil {
			t.Errorf("CheckDeviceMemory(%+v, 3 MiB) = %v, want nil", dev, err)
		}
	}
}

// TestResolveCPU: the CPU is found under every name that means it, with or without backend libraries.
func TestResolveCPU(t *testing.T) {
	for _, name := range []string{"", "cpu", "CPU", " cpu "} {
		d, err := ggml.ResolveDevice(name)
		if err != nil || !d.IsCPU() || d.Name != "CPU" {
			t.Errorf("ResolveDevice(%q) = %+v, %v; want the CPU", name, d, err)
		}
	}
	b, err := ggml.NewDeviceBackend("cpu", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Free()
	if !b.Device().IsCPU() {
		t.Fatalf("NewDeviceBackend(cpu) runs on %+v", b.Device())
	}
}

// TestBackendDirs: an explicit folder wins over BPO_BACKEND_DIR, which wins over the folders next to
// the executable; FindBackendLibraries takes each backend from the first folder that has it.
func TestBackendDirs(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	t.Setenv("BPO_BACKEND_DIR", a+string(filepath.ListSeparator)+b)
	if got := ggml.BackendDirs("/x"); len(got) != 1 || got[0] != "/x" {
		t.Errorf("BackendDirs(/x) = %v", got)
	}
	if got := ggml.BackendDirs(""); len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("BackendDirs with BPO_BACKEND_DIR = %v, want [%s %s]", got, a, b)
	}
	for _, f := range []string{filepath.Join(a, "libggml-cuda.so"), filepath.Join(b, "libggml-cuda.so"), filepath.Join(b, "libggml-vulkan.so")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := ggml.FindBackendLibraries(ggml.BackendDirs(""))
	want := []string{filepath.Join(a, "libggml-cuda.so"), filepath.Join(b, "libggml-vulkan.so")}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("FindBackendLibraries = %v, want %v", got, want)
	}
}

// TestVulkanDevicesListed: the Vulkan backend loads once, its device is listed after the CPU, and a
// backend on it starts and runs a graph through a scheduler with the CPU.
func TestVulkanDevicesListed(t *testing.T) {
	dev := vulkantest.Need(t)
	t.Logf("%s: %s (%s), %.0f MiB free of %.0f", dev.Name, dev.Description, dev.Type, float64(dev.FreeBytes)/(1<<20), float64(dev.TotalBytes)/(1<<20))
	devs := ggml.Devices()
	if len(devs) < 2 || !devs[0].IsCPU() {
		t.Fatalf("devices %+v: want the CPU and Vulkan0", devs)
	}
	if err := ggml.LoadBackend(vulkantest.Lib(t)); err != nil || len(ggml.Devices()) != len(devs) {
		t.Fatalf("second load: %v, %d devices (was %d)", err, len(ggml.Devices()), len(devs))
	}
	if auto, err := ggml.ResolveDevice("auto"); err != nil || auto.IsCPU() != (dev.Type != "gpu" && dev.Type != "igpu") {
		t.Errorf("ResolveDevice(auto) = %+v, %v (vulkan0 is a %s device)", auto, err, dev.Type)
	}

	vk, cpu := vulkanAndCPU(t)
	if vk.Device().Name != "Vulkan0" {
		t.Fatalf("device backend on %+v", vk.Device())
	}
	vk.SetThreads(4) // no effect on a device, no crash

	// y = A x with A and x in device memory, on a scheduler over the device and the CPU.
	y := mulMatOn(t, []float32{1, 2, 3, 4, 5, 6}, []float32{1, -1, 2}, 3, 2, 1, vk, cpu)
	if len(y) != 2 || y[0] != 5 || y[1] != 11 {
		t.Fatalf("A x on vulkan0 = %v, want [5 11]", y)
	}
}
