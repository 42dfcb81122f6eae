package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/version"
)

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
		{[]string{"enroll"}, 2, "", "gpulab-agent: unknown command \"enroll\"\n\n" + usage},
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
