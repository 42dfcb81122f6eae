package mig

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/mig/migtest"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// untouched fails unless the node has no instance, no drop-in, no state and
// saw no mutating command.
func (v *env) untouched() {
	v.t.Helper()
	if m := v.mutations(); len(m) != 0 {
		v.t.Errorf("ran %q", m)
	}
	if in := v.instances(); len(in) != 0 {
		v.t.Errorf("left instances %+v", in)
	}
	if _, ok := v.dropIn("alice"); ok {
		v.t.Error("wrote a drop-in")
	}
	if data, err := os.ReadFile(filepath.Join(v.stateDir, StateFile)); err == nil && string(data) != "{\n  \"assignments\": {}\n}\n" {
		v.t.Errorf("state = %s", data)
	}
}

func TestAGPUNotReadyForMIGIsRefusedBeforeAnythingChanges(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0, uuid1)
	v.fake.Lock(func(f *migtest.Fake) { f.GPUs[1].MIGEnabled = false })
	err := v.enforcer().Apply(ctx, assign("a-1", "1g.5gb", uuid0, uuid1))
	wantErr(t, err, "GPU 1 (NVIDIA A100-SXM4-40GB, "+uuid1+") is not in MIG mode", "nvidia-smi -i 1 -mig 1", "reset", "another enforcement mode")
	v.untouched()

	err = v.enforcer().Apply(ctx, assign("a-1", "1g.5gb", "GPU-00000000-0000-0000-0000-000000000000"))
	wantErr(t, err, "GPU GPU-00000000-0000-0000-0000-000000000000 is not on this node")
	v.untouched()
}

func TestAnInvalidOrUnofferedProfileIsRefused(t *testing.T) {
	for _, p := range []string{"1g.5gb; reboot", "9g.5gb", "big", "-cgi", "1g.5gb\n"} {
		t.Run(strconv.Quote(p), func(t *testing.T) {
			v := newEnv(t, migtest.A100SXM440GB, uuid0)
			wantErr(t, v.enforcer().Apply(ctx, assign("a-1", p, uuid0)), "is not a GPU-instance profile name")
			if c := v.fake.Calls(); len(c) != 0 {
				t.Errorf("ran %q", c)
			}
			v.untouched()
		})
	}
	// Well formed, but an H100's.
	v := newEnv(t, migtest.A100SXM440GB, uuid0)
	wantErr(t, v.enforcer().Apply(ctx, assign("a-1", "2g.20gb", uuid0)), "offers no MIG profile 2g.20gb; it offers 1g.5gb, 1g.5gb+me, 1g.10gb")
	v.untouched()
}

func TestAGPUWithoutRoomIsAClearErrorAndNothingIsLeftBehind(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0)
	e := v.enforcer()
	mustApply(t, e, enforce.Assignment{ID: "b-1", LinuxUsername: "bob", MIGProfile: "4g.20gb", GPUs: []enforce.GPU{{UUID: uuid0}}})
	v.fake.Calls()
	// The whole GPU does not fit beside bob's 4g.20gb: refused up front.
	wantErr(t, e.Apply(ctx, assign("a-1", "", uuid0)), "has no room for another 7g.40gb instance (0 of 1 free)", "request a smaller profile")
	if m := v.mutations(); len(m) != 0 {
		t.Errorf("ran %q", m)
	}
	if _, ok := v.dropIn("alice"); ok {
		t.Error("alice got a drop-in")
	}
}

// racingRunner fills GPU 1 the moment the enforcer creates its first
// instance, as an admin's nvidia-smi would between the enforcer's check of
// the free counts and its own -cgi there.
type racingRunner struct {
	*migtest.Fake
	done bool
}

func (r *racingRunner) Run(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
	if slices.Contains(args, "-cgi") && !r.done {
		r.done = true
		if _, _, err := r.Fake.Run(ctx, "nvidia-smi", "mig", "-i", "1", "-cgi", "7g.40gb", "-C"); err != nil {
			return nil, nil, err
		}
	}
	return r.Fake.Run(ctx, name, args...)
}

func TestAFailedCreationDestroysWhatTheApplyCreated(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0, uuid1)
	e := New(hostexec.Host{Root: v.root, Runner: &racingRunner{Fake: v.fake}}, nil, Config{StateDir: v.stateDir})
	err := e.Apply(ctx, assign("a-1", "3g.20gb", uuid0, uuid1))
	wantErr(t, err, "GPU 1 (NVIDIA A100-SXM4-40GB, "+uuid1+") has no room for a 3g.20gb instance", "Insufficient Resources")
	// Only the admin's instance is left; GPU 0's was destroyed again.
	if in := v.instances(); len(in) != 1 || in[0].GPU != uuid1 || in[0].Profile != "7g.40gb" {
		t.Errorf("instances = %+v, want only the admin's 7g.40gb on GPU 1", in)
	}
	if got, err := e.Applied(ctx); err != nil || len(got) != 0 {
		t.Errorf("Applied = %q, %v; want nothing", got, err)
	}
	if _, ok := v.dropIn("alice"); ok {
		t.Error("alice got a drop-in")
	}
}

func TestWithoutNvidiaSMIApplyFailsClearlyAndTheRestStillWorks(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0)
	v.fake.Lock(func(f *migtest.Fake) { f.Missing = true })
	e := v.enforcer()
	err := e.Apply(ctx, assign("a-1", "1g.5gb", uuid0))
	wantErr(t, err, "mig enforcement needs nvidia-smi from an NVIDIA driver R470 or later; nvidia-smi is not installed")
	if !errors.Is(err, hostexec.ErrNotFound) {
		t.Errorf("error %v does not match hostexec.ErrNotFound", err)
	}
	v.untouched()
	// A node that never had MIG assignments lists and removes without it.
	if got, err := e.Applied(ctx); err != nil || len(got) != 0 {
		t.Errorf("Applied = %q, %v", got, err)
	}
	if err := e.Remove(ctx, "a-1"); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if c := v.fake.Calls(); slices.ContainsFunc(c, func(c []string) bool { return c[0] == "nvidia-smi" }) {
		t.Errorf("Applied or Remove ran nvidia-smi: %q", c)
	}
}

func TestAnUnreadableStateIsAnErrorNotAFreshStart(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0)
	if err := os.MkdirAll(v.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.stateDir, StateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantErr(t, v.enforcer().Apply(ctx, assign("a-1", "1g.5gb", uuid0)), "read MIG state", "repair it")
	if _, err := v.enforcer().Applied(ctx); err == nil {
		t.Error("Applied succeeded over an unreadable state")
	}
}

// markDestroying edits the state as an agent killed in the middle of a
// destroy would have left it.
func (v *env) markDestroying(id string) {
	st := v.state()
	st.Assignments[id].Instances[0].Destroying = true
	data, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(v.stateDir, StateFile), data, 0o600); err != nil {
		v.t.Fatal(err)
	}
}
