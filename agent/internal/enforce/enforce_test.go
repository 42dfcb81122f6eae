package enforce_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/enforcetest"
)

func TestRegistryReturnsTheEnforcerRegisteredUnderAName(t *testing.T) {
	r := enforce.NewRegistry()
	soft, cgroup := &enforcetest.Memory{}, &enforcetest.Memory{}
	mustRegister(t, r, "soft", soft)
	mustRegister(t, r, "cgroup", cgroup)

	for name, want := range map[string]enforce.Enforcer{"soft": soft, "cgroup": cgroup} {
		got, err := r.Get(name)
		if err != nil {
			t.Fatalf("Get(%q): %v", name, err)
		}
		if got != want {
			t.Errorf("Get(%q) returned another mode's enforcer", name)
		}
	}
	if got, want := r.Names(), []string{"cgroup", "soft"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}

func TestRegistryGetOfAnUnknownModeSaysWhichModesExist(t *testing.T) {
	r := enforce.NewRegistry()
	mustRegister(t, r, "soft", &enforcetest.Memory{})

	_, err := r.Get("mig")
	if !errors.Is(err, enforce.ErrUnknownMode) {
		t.Fatalf("Get(mig) error = %v, want ErrUnknownMode", err)
	}
	if want := `get enforcer "mig": unknown enforcement mode (registered: [soft])`; err.Error() != want {
		t.Errorf("Get(mig) error = %q, want %q", err, want)
	}
}

func TestRegistryRefusesADuplicateEmptyOrNilRegistration(t *testing.T) {
	r := enforce.NewRegistry()
	first := &enforcetest.Memory{}
	mustRegister(t, r, "soft", first)

	if err := r.Register("soft", &enforcetest.Memory{}); err == nil {
		t.Error("second Register(soft) succeeded, want an error")
	}
	if got, _ := r.Get("soft"); got != first {
		t.Error("a refused duplicate replaced the first enforcer")
	}
	if err := r.Register("", &enforcetest.Memory{}); err == nil {
		t.Error("Register with an empty name succeeded, want an error")
	}
	if err := r.Register("cgroup", nil); err == nil {
		t.Error("Register of a nil enforcer succeeded, want an error")
	}
}

func mustRegister(t *testing.T, r *enforce.Registry, name string, e enforce.Enforcer) {
	t.Helper()
	if err := r.Register(name, e); err != nil {
		t.Fatalf("Register(%q): %v", name, err)
	}
}
