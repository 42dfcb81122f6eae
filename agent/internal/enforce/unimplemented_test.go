package enforce_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
)

func TestUnimplementedRefusesEveryAssignmentAndSaysWhichMode(t *testing.T) {
	err := enforce.Unimplemented{Mode: "cgroup"}.Apply(context.Background(), enforce.Assignment{ID: "a1"})
	if !errors.Is(err, enforce.ErrNotImplemented) {
		t.Fatalf("Apply error = %v, want ErrNotImplemented", err)
	}
	if want := "enforcement mode cgroup is not implemented on this agent yet"; err.Error() != want {
		t.Errorf("Apply error = %q, want %q", err, want)
	}
}

func TestUnimplementedHasNothingToRemoveOrList(t *testing.T) {
	u := enforce.Unimplemented{Mode: "mig"}
	if err := u.Remove(context.Background(), "a1"); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if got, err := u.Applied(context.Background()); err != nil || len(got) != 0 {
		t.Errorf("Applied = %q, %v; want nothing", got, err)
	}
}
