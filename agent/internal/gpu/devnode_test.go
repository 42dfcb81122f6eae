package gpu

import (
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/gpu/gputest"
)

func TestDeviceNodeMapsTheUUIDToItsMinorNotItsIndex(t *testing.T) {
	root := t.TempDir()
	// nvidia-smi sorts by bus id, so 0000:01 is index 0; the driver gave it minor 1.
	gputest.WriteDriverInfo(t, root, "0000:01:00.0", "GPU-aaaaaaaa-0000-0000-0000-000000000000", "1")
	gputest.WriteDriverInfo(t, root, "0000:41:00.0", "GPU-bbbbbbbb-0000-0000-0000-000000000000", "0")
	gputest.WriteDriverInfo(t, root, "0000:81:00.0", "GPU-cccccccc-0000-0000-0000-000000000000", "-")
	for uuid, want := range map[string]string{
		"GPU-aaaaaaaa-0000-0000-0000-000000000000": "/dev/nvidia1",
		"GPU-bbbbbbbb-0000-0000-0000-000000000000": "/dev/nvidia0",
	} {
		if got, err := DeviceNode(root, uuid); err != nil || got != want {
			t.Errorf("DeviceNode(%s) = %q, %v, want %q", uuid, got, err, want)
		}
	}
	for uuid, want := range map[string]string{
		"GPU-cccccccc-0000-0000-0000-000000000000": "says no device minor",
		"GPU-dddddddd-0000-0000-0000-000000000000": "is not on this host",
	} {
		if _, err := DeviceNode(root, uuid); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("DeviceNode(%s) = %v, want an error saying %q", uuid, err, want)
		}
	}
	if _, err := DeviceNode(t.TempDir(), "GPU-aaaaaaaa-0000-0000-0000-000000000000"); err == nil || !strings.Contains(err.Error(), "is the NVIDIA driver loaded?") {
		t.Errorf("DeviceNode without the driver = %v", err)
	}
}
