package gpu

import (
	"reflect"
	"testing"
)

func TestParseListRecordedOutputs(t *testing.T) {
	for _, tt := range recorded {
		if tt.dir != "a100-sxm4-80gb-x4-mig" && tt.dir != "a100-sxm4-40gb-mig-enabled-and-disabled" {
			continue // nvidia-smi -L is recorded where a GPU is in MIG mode
		}
		t.Run(tt.dir, func(t *testing.T) {
			got, err := ParseList(readTestdata(t, tt.dir, "list-gpus.txt"))
			if err != nil {
				t.Fatalf("ParseList: %v", err)
			}
			want := make(map[string][]MIGDevice)
			for _, g := range tt.want {
				if len(g.MIGDevices) > 0 {
					want[g.UUID] = g.MIGDevices
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseList =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestParseListAcceptsEveryLayoutNvidiaSMIPrints(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want map[string][]MIGDevice
	}{
		{name: "empty output", out: "", want: map[string][]MIGDevice{}},
		{
			name: "GPUs without MIG devices",
			out:  "GPU 0: Tesla T4 (UUID: GPU-a)\nGPU 1: Tesla T4 (UUID: GPU-b)\n",
			want: map[string][]MIGDevice{},
		},
		{
			// Drivers before R470 printed single spaces and MIG-GPU UUIDs.
			name: "R460 layout",
			out: "GPU 0: A100-SXM4-40GB (UUID: GPU-2fa5cf01-9520-1bc1-995b-cc0c6d9bca7c)\n" +
				"  MIG 1c.3g.20gb Device 0: (UUID: MIG-GPU-2fa5cf01-9520-1bc1-995b-cc0c6d9bca7c/1/0)\n" +
				"  MIG 1c.3g.20gb Device 1: (UUID: MIG-GPU-2fa5cf01-9520-1bc1-995b-cc0c6d9bca7c/2/0)\n",
			want: map[string][]MIGDevice{"GPU-2fa5cf01-9520-1bc1-995b-cc0c6d9bca7c": {
				{0, "1c.3g.20gb", "MIG-GPU-2fa5cf01-9520-1bc1-995b-cc0c6d9bca7c/1/0"},
				{1, "1c.3g.20gb", "MIG-GPU-2fa5cf01-9520-1bc1-995b-cc0c6d9bca7c/2/0"},
			}},
		},
		{
			name: "a media-engine profile, CRLF and a name with parentheses",
			out: "GPU 0: NVIDIA H100 80GB HBM3 (rev a) (UUID: GPU-a)\r\n" +
				"  MIG 1g.10gb+me  Device  0: (UUID: MIG-b)\r\n",
			want: map[string][]MIGDevice{"GPU-a": {{0, "1g.10gb+me", "MIG-b"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseList([]byte(tt.out))
			if err != nil {
				t.Fatalf("ParseList(%q): %v", tt.out, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseList(%q) =\n%+v\nwant\n%+v", tt.out, got, tt.want)
			}
		})
	}
}

func TestParseListRejectsLinesItDoesNotKnow(t *testing.T) {
	tests := map[string]string{
		"MIG device before any GPU": "  MIG 1g.10gb     Device  0: (UUID: MIG-a)\n",
		"an unknown line":           "GPU 0: NVIDIA H200 (UUID: GPU-a)\n  Something else\n",
		"a MIG device without UUID": "GPU 0: NVIDIA H200 (UUID: GPU-a)\n  MIG 1g.18gb     Device  0:\n",
	}
	for name, out := range tests {
		t.Run(name, func(t *testing.T) {
			if got, err := ParseList([]byte(out)); err == nil {
				t.Errorf("ParseList(%q) = %+v, want an error", out, got)
			}
		})
	}
}
