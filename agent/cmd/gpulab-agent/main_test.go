package main

import (
	"bytes"
	"cmp"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/enroll"
	"github.com/gpulab/gpulab/agent/internal/gpu/gputest"
	"github.com/gpulab/gpulab/agent/internal/reconcile"
	"github.com/gpulab/gpulab/agent/internal/runloop"
	"github.com/gpulab/gpulab/agent/internal/version"
)

// run wires the real reconciler into `gpulab-agent run`.
var _ runloop.Reconciler = (*reconcile.Reconciler)(nil)

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{[]string{"version"}, 0, version.String() + "\n", ""},
		{[]string{"--version"}, 0, version.String() + "\n", ""},
		{[]string{"help"}, 0, usage, ""},
		{[]string{"-h"}, 0, usage, ""},
		{nil, 2, "", usage},
		{[]string{"frobnicate"}, 2, "", "gpulab-agent: unknown command \"frobnicate\"\n\n" + usage},
		{[]string{"enroll"}, 2, "", "gpulab-agent enroll: --server is required\n\n" + enroll.Usage},
		{[]string{"enroll", "--help"}, 0, enroll.Usage, ""},
		{[]string{"run", "--help"}, 0, runloop.Usage, ""},
		{[]string{"run", "--bogus"}, 2, "", "gpulab-agent run: flag provided but not defined: -bogus\n\n" + runloop.Usage},
		{[]string{"version", "extra"}, 2, "", "gpulab-agent: version takes no arguments, got [\"extra\"]\n\n" + usage},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit status = %d, want %d", code, tt.wantCode)
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.wantStdout)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

// TestDiscoverCommand reads this machine's /proc and runs a stand-in
// nvidia-smi that replays a recording.
func TestDiscoverCommand(t *testing.T) {
	tests := []struct {
		recording  string // "": no nvidia-smi on PATH
		wantGPUs   int
		wantStderr string
	}{
		{recording: "h200-x8", wantGPUs: 8},
		{recording: "", wantGPUs: 0},
		{recording: "driver-not-loaded", wantGPUs: 0, wantStderr: "gpulab-agent discover: query GPUs with nvidia-smi: " +
			"run nvidia-smi: exit status 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. " +
			"Make sure that the latest NVIDIA driver is installed and running.\n"},
	}
	for _, tt := range tests {
		t.Run(cmp.Or(tt.recording, "no nvidia-smi"), func(t *testing.T) {
			if tt.recording == "" {
				gputest.UseNoNvidiaSMI(t)
			} else {
				gputest.UseFakeNvidiaSMI(t, tt.recording)
			}
			var stdout, stderr bytes.Buffer
			if code := run([]string{"discover"}, &stdout, &stderr); code != 0 {
				t.Errorf("exit status = %d, want 0", code)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantStderr)
			}
			// The field names of the REST Node.hardware object, every field
			// present even when empty, so that an operator sees "gpus": [].
			for _, field := range []string{`"cpu_model"`, `"cpu_cores"`, `"ram_mb"`, `"gpus"`} {
				if !strings.Contains(stdout.String(), field) {
					t.Errorf("stdout lacks %s:\n%s", field, stdout.String())
				}
			}
			var hardware agentv1.Hardware
			if err := protojson.Unmarshal(stdout.Bytes(), &hardware); err != nil {
				t.Fatalf("stdout is not a Hardware message in JSON: %v\n%s", err, stdout.String())
			}
			if hardware.GetCpuCores() < 1 || hardware.GetRamMb() < 1 || len(hardware.GetGpus()) != tt.wantGPUs {
				t.Errorf("hardware = %v, want this machine's CPUs and memory and %d GPUs", &hardware, tt.wantGPUs)
			}
		})
	}
}

func TestDiscoverTakesNoArguments(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"discover", "--gpus"}, &stdout, &stderr); code != 2 || stdout.Len() != 0 {
		t.Errorf("exit status = %d, stdout %q; want 2 and nothing", code, stdout.String())
	}
	if want := "gpulab-agent: discover takes no arguments, got [\"--gpus\"]\n\n" + usage; stderr.String() != want {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
}
