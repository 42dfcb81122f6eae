package enforcetest

import (
	"context"
	"slices"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
)

// Conformance checks the enforce.Enforcer contract: Apply is idempotent and
// converges to a changed assignment, Remove undoes Apply and tolerates what
// is not applied, Applied lists what is applied. newEnforcer returns a fresh
// Enforcer over a fresh (fake) host for each subtest. Conformance sees the
// host only through Applied; that a repeated Apply issued no command at all
// is for each implementation's own tests to check on its fake host.
func Conformance(t *testing.T, newEnforcer func(t *testing.T) enforce.Enforcer) {
	ctx := context.Background()
	a := enforce.Assignment{
		ID:            "6f1c1d2e-8a4b-4f7e-9b7a-2d7f0e3c5a11",
		LinuxUsername: "gpulab-alice",
		GPUs:          []enforce.GPU{{Index: 0, UUID: "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02"}},
		CPUs:          8,
		RAMMB:         65536,
	}

	t.Run("apply twice then list", func(t *testing.T) {
		e := newEnforcer(t)
		for i := range 2 {
			if err := e.Apply(ctx, a); err != nil {
				t.Fatalf("Apply #%d: %v", i+1, err)
			}
		}
		wantApplied(t, e, a.ID)
	})

	t.Run("apply a changed assignment", func(t *testing.T) {
		e := newEnforcer(t)
		if err := e.Apply(ctx, a); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		smaller := a
		smaller.GPUs, smaller.CPUs, smaller.RAMMB = nil, 2, 4096
		if err := e.Apply(ctx, smaller); err != nil {
			t.Fatalf("Apply changed: %v", err)
		}
		wantApplied(t, e, a.ID)
	})

	t.Run("remove twice", func(t *testing.T) {
		e := newEnforcer(t)
		if err := e.Apply(ctx, a); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		for i := range 2 {
			if err := e.Remove(ctx, a.ID); err != nil {
				t.Fatalf("Remove #%d: %v", i+1, err)
			}
		}
		wantApplied(t, e)
	})

	t.Run("remove what was never applied", func(t *testing.T) {
		e := newEnforcer(t)
		if err := e.Remove(ctx, a.ID); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		wantApplied(t, e)
	})
}

func wantApplied(t *testing.T, e enforce.Enforcer, ids ...string) {
	t.Helper()
	got, err := e.Applied(context.Background())
	if err != nil {
		t.Fatalf("Applied: %v", err)
	}
	slices.Sort(got)
	if want := slices.Sorted(slices.Values(ids)); !slices.Equal(got, want) {
		t.Errorf("Applied = %q, want %q", got, want)
	}
}
