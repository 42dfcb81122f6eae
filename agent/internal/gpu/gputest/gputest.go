// Package gputest runs tests against a stand-in nvidia-smi program that
// replays outputs recorded on real hosts (internal/gpu/testdata), so that a
// test exercises the real exec path without a GPU.
//
// Both helpers set PATH with t.Setenv, so a test that uses them cannot be
// parallel.
package gputest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Recordings is the folder of recordings: one sub-folder per host, as
// described in its README.md.
func Recordings() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("gputest: cannot locate its own source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// UseFakeNvidiaSMI puts a stand-in nvidia-smi first on PATH for the rest of
// the test; it answers from Recordings()/<recording>, and fails any command
// line that was not recorded. It copies the script, so that its mode does
// not depend on how the checkout kept the executable bit.
func UseFakeNvidiaSMI(t testing.TB, recording string) {
	t.Helper()
	dir := filepath.Join(Recordings(), recording)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("gputest: no recording %q: %v", recording, err)
	}
	script, err := os.ReadFile(filepath.Join(Recordings(), "fake-nvidia-smi"))
	if err != nil {
		t.Fatalf("gputest: read fake nvidia-smi: %v", err)
	}
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "nvidia-smi"), script, 0o755); err != nil {
		t.Fatalf("gputest: install fake nvidia-smi: %v", err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("GPULAB_FAKE_NVIDIA_SMI", dir)
}

// UseNoNvidiaSMI leaves nvidia-smi off PATH for the rest of the test, as on
// a node without the NVIDIA driver, even where the machine running the test
// has one. PATH then holds only an empty folder.
func UseNoNvidiaSMI(t testing.TB) {
	t.Helper()
	t.Setenv("PATH", t.TempDir())
}
