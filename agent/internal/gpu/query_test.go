package gpu

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestParseQueryGPURecordedOutputs(t *testing.T) {
	for _, tt := range recorded {
		t.Run(tt.dir, func(t *testing.T) {
			got, err := ParseQueryGPU(readTestdata(t, tt.dir, "query-gpu.csv"))
			if err != nil {
				t.Fatalf("ParseQueryGPU: %v", err)
			}
			if want := withoutMIGDevices(tt.want); !reflect.DeepEqual(got, want) {
				t.Errorf("ParseQueryGPU =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestParseQueryGPUAcceptsWhatNvidiaSMIWrites(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []GPU
	}{
		{name: "empty output", out: "", want: nil},
		{name: "only a newline", out: "\n", want: nil},
		{
			name: "CRLF line ends and trailing spaces",
			out:  "0, GPU-a, Tesla T4 , 15360 , [N/A] , [N/A] \r\n",
			want: []GPU{{Index: 0, UUID: "GPU-a", Name: "Tesla T4", MemoryMB: 15360}},
		},
		{
			name: "sorted by index, not by line",
			out:  "1, GPU-b, NVIDIA H200, 143771, Disabled, Disabled\n0, GPU-a, NVIDIA H200, 143771, Disabled, Disabled\n",
			want: []GPU{
				{Index: 0, UUID: "GPU-a", Name: "NVIDIA H200", MemoryMB: 143771, MIGCapable: true},
				{Index: 1, UUID: "GPU-b", Name: "NVIDIA H200", MemoryMB: 143771, MIGCapable: true},
			},
		},
		{
			// GB10 shares system memory: nvidia-smi has no framebuffer total.
			name: "no memory total and MIG not supported",
			out:  "0, GPU-a, NVIDIA GB10, [N/A], [Not Supported], [Not Supported]\n",
			want: []GPU{{Index: 0, UUID: "GPU-a", Name: "NVIDIA GB10"}},
		},
		{
			name: "a placeholder nvidia-smi gives for an error",
			out:  "0, GPU-a, NVIDIA A100-SXM4-80GB, 81920, [Unknown Error], [Unknown Error]\n",
			want: []GPU{{Index: 0, UUID: "GPU-a", Name: "NVIDIA A100-SXM4-80GB", MemoryMB: 81920}},
		},
		{
			name: "a quote in a name is literal",
			out:  "0, GPU-a, NVIDIA \"Custom\" Board, 1024, [N/A], [N/A]\n",
			want: []GPU{{Index: 0, UUID: "GPU-a", Name: "NVIDIA \"Custom\" Board", MemoryMB: 1024}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseQueryGPU([]byte(tt.out))
			if err != nil {
				t.Fatalf("ParseQueryGPU(%q): %v", tt.out, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseQueryGPU(%q) =\n%+v\nwant\n%+v", tt.out, got, tt.want)
			}
		})
	}
}

func TestParseQueryGPURejectsMalformedLines(t *testing.T) {
	tests := map[string]string{
		"the old five columns": "0, GPU-a, NVIDIA H100 80GB HBM3, 81559, Disabled\n",
		"index not a number":   "x, GPU-a, NVIDIA H100 80GB HBM3, 81559, Disabled, Disabled\n",
		"negative index":       "-1, GPU-a, NVIDIA H100 80GB HBM3, 81559, Disabled, Disabled\n",
		"no uuid":              "0, [N/A], NVIDIA H100 80GB HBM3, 81559, Disabled, Disabled\n",
		"memory with units":    "0, GPU-a, NVIDIA H100 80GB HBM3, 81559 MiB, Disabled, Disabled\n",
		"unknown current mode": "0, GPU-a, NVIDIA H100 80GB HBM3, 81559, Pending, Disabled\n",
		"unknown pending mode": "0, GPU-a, NVIDIA H100 80GB HBM3, 81559, Disabled, enabled\n",
		"a header line":        "index, uuid, name, memory.total [MiB], mig.mode.current, mig.mode.pending\n",
	}
	for name, out := range tests {
		t.Run(name, func(t *testing.T) {
			if got, err := ParseQueryGPU([]byte(out)); err == nil {
				t.Errorf("ParseQueryGPU(%q) = %+v, want an error", out, got)
			}
		})
	}
}

func readTestdata(t *testing.T, path ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"testdata"}, path...)...))
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	return b
}
