package main

// Device selection: the --device and --backend-dir flags of the commands that run a model, and
// `bpo devices`, which lists the devices of the backend libraries bpo finds (make vulkan, make cuda).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/bpo-dev/bpo/ggml"
	"github.com/bpo-dev/bpo/llama"
	"github.com/urfave/cli/v2"
)

// deviceFlag is --device; commands that take it also take backendDirFlag.
func deviceFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:  "device",
		Value: "cpu",
		Usage: "where the model runs: cpu, auto (the first GPU found, else the CPU) or a device that bpo devices lists, such as vulkan0",
	}
}

func backendDirFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:    "backend-dir",
		EnvVars: []string{"BPO_BACKEND_DIR"},
		Usage:   "folder of ggml backend libraries (libggml-vulkan.so, ...; default: next to bpo and ../build/<backend>/lib/ollama)",
	}
}

// deviceOf resolves --device, loading the backend libraries when a device other than the CPU is asked
// for. It returns the device's flag name ("cpu", "vulkan0").
func deviceOf(c *cli.Context) (string, error) {
	name := strings.ToLower(strings.TrimSpace(c.String("device")))
	if name == "" || name == "cpu" {
		return "cpu", nil
	}
	if _, err := ggml.LoadBackends(c.String("backend-dir")); err != nil {
		return "", fmt.Errorf("--device %s: %w", name, err)
	}
	dev, err := ggml.ResolveDevice(name)
	if err != nil {
		return "", fmt.Errorf("--device %s: %w", name, err)
	}
	return strings.ToLower(dev.Name), nil
}

// sayTrainDevice tells the user, on stderr, the device a LoRA training run uses when it is not the CPU.
func sayTrainDevice(w io.Writer, cmd string, dev ggml.DeviceInfo) {
	if !dev.IsCPU() {
		fmt.Fprintf(w, "%s: LoRA training on %s (%s)\n", cmd, strings.ToLower(dev.Name), dev.Description)
	}
}

// openModelOn loads a model onto the device of --device (openModel's checks and errors otherwise).
func openModelOn(c *cli.Context, path string) (*llama.Model, error) {
	device, err := deviceOf(c)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("no model file given (--model FILE.gguf)")
	}
	return llama.LoadModel(path, llama.ModelOptions{Device: device})
}

// devicesOutput is the --json output of `bpo devices`.
type devicesOutput struct {
	Libraries []string          `json:"libraries"`
	Devices   []ggml.DeviceInfo `json:"devices"`
}

func devicesCommand() *cli.Command {
	return &cli.Command{
		Name:  "devices",
		Usage: "list the devices bpo can run models on (the CPU and those of the backend libraries found)",
		Description: "Backend libraries are built with `make vulkan` (or `make cuda`) and found next to bpo, in\n" +
			"../build/<backend>/lib/ollama, or in --backend-dir / $BPO_BACKEND_DIR. Mesa's software Vulkan device\n" +
			"(lavapipe) is listed only with GGML_VK_VISIBLE_DEVICES=0. With --placement and --model it prints, for the\n" +
			"graph of one LoRA training step and for llama.cpp's inference graph on --device, which ops ggml's\n" +
			"scheduler runs on the device and which on the CPU, and why. Examples:\n\n" +
			"   GGML_VK_VISIBLE_DEVICES=0 bpo devices\n" +
			"   GGML_VK_VISIBLE_DEVICES=0 bpo devices --placement --model testdata/models/stories260K.gguf --device vulkan0",
		Flags: append([]cli.Flag{backendDirFlag(), &cli.BoolFlag{Name: "json", Usage: "print {\"libraries\":[...],\"devices\":[...]} (with --placement: the placement)"}},
			placementFlags()...),
		Action: func(c *cli.Context) error {
			if c.Bool("placement") {
				return placementAction(c)
			}
			if c.IsSet("model") || c.IsSet("kv-f16") || c.IsSet("device") {
				return errors.New("devices: --model, --device and --kv-f16 go with --placement")
			}
			libs, err := ggml.LoadBackends(c.String("backend-dir"))
			if err != nil {
				return fmt.Errorf("devices: %w", err)
			}
			out := devicesOutput{Libraries: append([]string{}, libs...), Devices: ggml.Devices()}
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(out)
			}
			return printDevices(c.App.Writer, out)
		},
	}
}

func printDevices(w io.Writer, out devicesOutput) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tBACKEND\tTYPE\tFREE MiB\tTOTAL MiB\tDESCRIPTION")
	vulkanDevices := 0
	for _, d := range out.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.0f\t%s\n", strings.ToLower(d.Name), d.Backend, d.Type,
			float64(d.FreeBytes)/(1<<20), float64(d.TotalBytes)/(1<<20), d.Description)
		if d.Backend == "Vulkan" {
			vulkanDevices++
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Libraries) == 0 {
		fmt.Fprintln(w, "no backend library found (build one with `make vulkan`; see --backend-dir)")
	}
	for _, l := range out.Libraries {
		fmt.Fprintln(w, "loaded", l)
		if strings.HasSuffix(l, "libggml-vulkan.so") && vulkanDevices == 0 {
			fmt.Fprintln(w, "  no Vulkan GPU found; Mesa's software device (lavapipe) is listed only with GGML_VK_VISIBLE_DEVICES=0")
		}
	}
	return nil
}

// trainDeviceFlag is --device of the training commands (with backendDirFlag). LoRA training runs on
// any device; full-parameter training on the CPU only (nn.TrainModel refuses it elsewhere).
func trainDeviceFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:  "device",
		Value: "cpu",
		Usage: "where LoRA training runs: cpu, auto (the first GPU found, else the CPU) or a device that bpo devices lists, such as vulkan0 (full-parameter training: cpu only)",
	}
}
