package gpu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/hostexec/hostexectest"
)

func TestParseQueryGPURecordedOutputs(t *testing.T) {
	tests := []struct {
		file string
		want []GPU
	}{
		{
			file: "a100-sxm4-40gb-mig-enabled-and-disabled.csv",
			want: []GPU{
				{0, "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02", "NVIDIA A100-SXM4-40GB", 40960, true, true},
				{1, "GPU-cbed321d-8053-4ea9-900d-454ccfcb1d4d", "NVIDIA A100-SXM4-40GB", 40960, true, false},
			},
		},
		{
			file: "a100-80gb-pcie-mig-disabled.csv",
			want: []GPU{
				{0, "GPU-e330e7bd-cb0f-475d-a76b-a8dd6ddf8c24", "NVIDIA A100 80GB PCIe", 81920, true, false},
			},
		},
		{
			file: "h100-80gb-hbm3-x4.csv",
			want: []GPU{
				{0, "GPU-a7614313-de47-47d2-ae1c-ede46ea5c861", "NVIDIA H100 80GB HBM3", 81559, true, false},
				{1, "GPU-38cb7dd0-3e30-4847-8d83-ff6672e69464", "NVIDIA H100 80GB HBM3", 81559, true, false},
				{2, "GPU-e7b847a7-c706-4672-b649-dd8657f5a97e", "NVIDIA H100 80GB HBM3", 81559, true, false},
				{3, "GPU-a012f0c0-5cd3-4605-8d36-bbaf1360a65b", "NVIDIA H100 80GB HBM3", 81559, true, false},
			},
		},
		{
			file: "rtx-4090.csv",
			want: []GPU{
				{0, "GPU-cecb4b41-f08c-4ffc-bf3e-db9c1d2602fb", "NVIDIA GeForce RTX 4090", 24564, false, false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseQueryGPU(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("ParseQueryGPU: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseQueryGPU =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseQueryGPUAcceptsWhatNvidiaSMIWritesForMissingValues(t *testing.T) {
	out := "1, GPU-b, NVIDIA GB10, [N/A], [Not Supported]\r\n0, GPU-a, Tesla T4, 15360, [N/A]\r\n"
	want := []GPU{
		{Index: 0, UUID: "GPU-a", Name: "Tesla T4", MemoryMB: 15360},
		{Index: 1, UUID: "GPU-b", Name: "NVIDIA GB10"},
	}
	got, err := ParseQueryGPU([]byte(out))
	if err != nil {
		t.Fatalf("ParseQueryGPU: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseQueryGPU = %+v, want %+v (sorted by index)", got, want)
	}
}

func TestParseQueryGPURejectsMalformedLines(t *testing.T) {
	tests := map[string]string{
		"too few columns":    "0, GPU-a, NVIDIA H100 80GB HBM3, 81559\n",
		"index not a number": "x, GPU-a, NVIDIA H100 80GB HBM3, 81559, Disabled\n",
		"negative index":     "-1, GPU-a, NVIDIA H100 80GB HBM3, 81559, Disabled\n",
		"no uuid":            "0, [N/A], NVIDIA H100 80GB HBM3, 81559, Disabled\n",
		"memory with units":  "0, GPU-a, NVIDIA H100 80GB HBM3, 81559 MiB, Disabled\n",
		"unknown mig mode":   "0, GPU-a, NVIDIA H100 80GB HBM3, 81559, Pending\n",
	}
	for name, out := range tests {
		t.Run(name, func(t *testing.T) {
			if got, err := ParseQueryGPU([]byte(out)); err == nil {
				t.Errorf("ParseQueryGPU(%q) = %+v, want an error", out, got)
			}
		})
	}
}

func TestDiscoverRunsTheQueryAndParsesIt(t *testing.T) {
	var fake hostexectest.Fake
	fake.Set(hostexectest.Result{Stdout: readTestdata(t, "rtx-4090.csv")}, "nvidia-smi", QueryArgs...)

	got, err := NvidiaSMI{Runner: &fake}.Discover(context.Background())
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if len(got) != 1 || got[0].Name != "NVIDIA GeForce RTX 4090" {
		t.Errorf("Discover = %+v, want the one RTX 4090", got)
	}
}

func TestDiscoverOnANodeWithoutNvidiaSMIFindsNoGPUsAndNoError(t *testing.T) {
	var fake hostexectest.Fake
	fake.Set(hostexectest.Result{Err: hostexec.ErrNotFound}, "nvidia-smi", QueryArgs...)

	got, err := NvidiaSMI{Runner: &fake}.Discover(context.Background())
	if err != nil || len(got) != 0 {
		t.Errorf("Discover = %+v, %v; want no GPUs and no error", got, err)
	}
}

func TestDiscoverWithTheDriverButNoGPUFindsNoGPUsAndNoError(t *testing.T) {
	var fake hostexectest.Fake
	fake.Set(hostexectest.Result{Stdout: readTestdata(t, "no-devices.txt"), Err: errors.New("exit status 6")},
		"nvidia-smi", QueryArgs...)

	got, err := NvidiaSMI{Runner: &fake}.Discover(context.Background())
	if err != nil || len(got) != 0 {
		t.Errorf("Discover = %+v, %v; want no GPUs and no error", got, err)
	}
}

func TestDiscoverReportsAFailingNvidiaSMIWithItsMessage(t *testing.T) {
	var fake hostexectest.Fake
	exit9 := errors.New("exit status 9")
	fake.Set(hostexectest.Result{Stdout: readTestdata(t, "driver-not-loaded.txt"), Err: exit9},
		"nvidia-smi", QueryArgs...)

	_, err := NvidiaSMI{Runner: &fake}.Discover(context.Background())
	if !errors.Is(err, exit9) {
		t.Fatalf("Discover error = %v, want it to wrap the exit status", err)
	}
	if !strings.Contains(err.Error(), "couldn't communicate with the NVIDIA driver") {
		t.Errorf("Discover error = %q, want nvidia-smi's message in it", err)
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	return b
}
