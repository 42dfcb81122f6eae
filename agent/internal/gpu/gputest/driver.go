package gputest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// WriteDriverInfo gives a fake host under root a GPU as the NVIDIA driver
// describes it: /proc/driver/nvidia/gpus/<bus>/information with its UUID
// and device minor (a number, or what a broken driver writes instead).
func WriteDriverInfo(t testing.TB, root, bus, uuid, minor string) {
	t.Helper()
	dir := filepath.Join(root, "proc/driver/nvidia/gpus", bus)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The layout of driver 550's file, tabs included.
	info := fmt.Sprintf("Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 0\nGPU UUID: \t %s\n"+
		"Video BIOS: \t 96.00.99.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\n"+
		"Bus Location: \t %s\nDevice Minor: \t %s\nGPU Excluded:\t No\n", uuid, bus, minor)
	if err := os.WriteFile(filepath.Join(dir, "information"), []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
}
