package hostexectest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

func TestFakeAnswersScriptedCommandsAndRecordsCalls(t *testing.T) {
	var f Fake
	f.Set(Result{Stdout: []byte("out"), Stderr: []byte("err")}, "tool", "a b")
	f.Set(Result{Err: hostexec.ErrNotFound}, "missing")

	stdout, stderr, err := f.Run(context.Background(), "tool", "a b")
	if err != nil || string(stdout) != "out" || string(stderr) != "err" {
		t.Errorf("Run(tool, \"a b\") = %q, %q, %v; want out, err, nil", stdout, stderr, err)
	}
	if _, _, err := f.Run(context.Background(), "missing"); !errors.Is(err, hostexec.ErrNotFound) {
		t.Errorf("Run(missing) error = %v, want ErrNotFound", err)
	}

	want := [][]string{{"tool", "a b"}, {"missing"}}
	if got := f.Calls(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Calls() = %q, want %q", got, want)
	}
}

func TestFakeRefusesUnscriptedCommandsEvenWhenWordsJoinTheSame(t *testing.T) {
	var f Fake
	f.Set(Result{}, "tool", "a b")
	if _, _, err := f.Run(context.Background(), "tool", "a", "b"); !errors.Is(err, ErrUnexpected) {
		t.Errorf("error = %v, want ErrUnexpected", err)
	}
}
