package enforcetest

import (
	"context"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
)

func TestMemoryKeepsTheEnforcerContract(t *testing.T) {
	Conformance(t, func(*testing.T) enforce.Enforcer { return &Memory{} })
}

func TestMemoryCountsOnlyApplyAndRemoveThatChangeSomething(t *testing.T) {
	ctx := context.Background()
	var m Memory
	a := enforce.Assignment{ID: "a1", LinuxUsername: "gpulab-alice", GPUs: []enforce.GPU{{Index: 0, UUID: "GPU-a"}}}

	steps := []struct {
		name        string
		do          func() error
		wantChanges int
	}{
		{"apply", func() error { return m.Apply(ctx, a) }, 1},
		{"apply again", func() error { return m.Apply(ctx, a) }, 1},
		{"apply with more RAM", func() error { b := a; b.RAMMB = 1024; return m.Apply(ctx, b) }, 2},
		{"remove", func() error { return m.Remove(ctx, a.ID) }, 3},
		{"remove again", func() error { return m.Remove(ctx, a.ID) }, 3},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := m.Changes(); got != s.wantChanges {
			t.Errorf("after %s: Changes() = %d, want %d", s.name, got, s.wantChanges)
		}
	}
}

func TestMemoryIsNotChangedByTheCallersSlice(t *testing.T) {
	var m Memory
	gpus := []enforce.GPU{{Index: 0, UUID: "GPU-a"}}
	if err := m.Apply(context.Background(), enforce.Assignment{ID: "a1", GPUs: gpus}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	gpus[0].UUID = "GPU-b"
	if got, _ := m.Get("a1"); got.GPUs[0].UUID != "GPU-a" {
		t.Errorf("applied GPU = %q after the caller changed its slice, want GPU-a", got.GPUs[0].UUID)
	}
}
