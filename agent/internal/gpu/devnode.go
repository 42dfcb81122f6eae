package gpu

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procGPUs is where the NVIDIA kernel driver describes each GPU it drives,
// one directory per PCI bus id holding an "information" file.
const procGPUs = "proc/driver/nvidia/gpus"

// DeviceNode returns the device node, /dev/nvidiaN, of the GPU with this
// UUID, read from the driver's /proc/driver/nvidia/gpus/<bus id>/information
// ("GPU UUID:" and "Device Minor:") under root ("/" on the host; a test's
// fake host elsewhere).
//
// The minor number, not nvidia-smi's index, names the device node: the
// driver numbers its devices in its own probe order and nvidia-smi by PCI
// bus id, and the two differ on some boards and after a GPU is hot-removed.
// A rule built from the index would open another GPU. The UUID names one
// board, so it is the key.
func DeviceNode(root, uuid string) (string, error) {
	dir := filepath.Join(root, procGPUs)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("find the device node of GPU %s: %w (is the NVIDIA driver loaded?)", uuid, err)
	}
	for _, ent := range entries {
		data, err := os.ReadFile(filepath.Join(dir, ent.Name(), "information"))
		if err != nil {
			continue // a GPU going away while we read: not the one asked for
		}
		id, minor := parseInformation(string(data))
		if id != uuid {
			continue
		}
		n, err := strconv.Atoi(minor)
		if err != nil || n < 0 {
			return "", fmt.Errorf("find the device node of GPU %s: %s says no device minor (%q)", uuid, filepath.Join(dir, ent.Name(), "information"), minor)
		}
		return "/dev/nvidia" + strconv.Itoa(n), nil
	}
	return "", fmt.Errorf("GPU %s is not on this host (not in %s)", uuid, dir)
}

// parseInformation reads the "GPU UUID" and "Device Minor" fields of one
// information file ("Key: \t value" lines).
func parseInformation(text string) (uuid, minor string) {
	for line := range strings.Lines(text) {
		k, v, _ := strings.Cut(line, ":")
		switch strings.TrimSpace(k) {
		case "GPU UUID":
			uuid = strings.TrimSpace(v)
		case "Device Minor":
			minor = strings.TrimSpace(v)
		}
	}
	return uuid, minor
}
