package mig

import (
	"slices"
	"strconv"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce/mig/migtest"
)

func TestRemoveTakesTheDropInAwayThenDestroysTheInstances(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0, uuid1)
	e := v.enforcer()
	mustApply(t, e, assign("a-1", "1g.10gb", uuid0, uuid1))
	v.fake.Calls()
	if err := e.Remove(ctx, "a-1"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	calls := v.fake.Calls()
	firstSMI := slices.IndexFunc(calls, migtest.Mutating)
	lastSshd := -1
	for i, c := range calls {
		if c[0] == "sshd" || c[0] == "systemctl" {
			lastSshd = i
		}
	}
	if lastSshd < 0 || firstSMI < lastSshd {
		t.Errorf("commands = %q, want sshd's check and reload before any destroy", calls)
	}
	if in := v.instances(); len(in) != 0 {
		t.Errorf("instances left: %+v", in)
	}
	if _, ok := v.dropIn("alice"); ok {
		t.Error("drop-in left")
	}
	if got, err := e.Applied(ctx); err != nil || len(got) != 0 {
		t.Errorf("Applied = %q, %v", got, err)
	}
}

func TestAnInstanceInUseIsKeptAndRemovedByALaterRetry(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0)
	e := v.enforcer()
	mustApply(t, e, assign("a-1", "3g.20gb", uuid0))
	dev := v.uuids()[0]
	v.fake.Lock(func(f *migtest.Fake) { f.InUse[dev] = true })

	err := e.Remove(ctx, "a-1")
	wantErr(t, err, "MIG device "+dev, "is still used by a process", "retried at the next reconcile", "In use by another client")
	if _, ok := v.dropIn("alice"); ok {
		t.Error("the drop-in is still there: new sessions would get the device")
	}
	if got, _ := e.Applied(ctx); !slices.Equal(got, []string{"a-1"}) {
		t.Errorf("Applied = %q, want a-1 still (so that Remove is retried)", got)
	}
	if rec := v.state().Assignments["a-1"]; rec == nil || len(rec.Instances) != 1 || rec.Instances[0].MIGUUID != dev {
		t.Errorf("state record = %+v, want the instance kept", rec)
	}

	v.fake.Lock(func(f *migtest.Fake) { delete(f.InUse, dev) })
	if err := e.Remove(ctx, "a-1"); err != nil {
		t.Fatalf("Remove retried: %v", err)
	}
	if in := v.instances(); len(in) != 0 {
		t.Errorf("instances left: %+v", in)
	}
	if got, _ := e.Applied(ctx); len(got) != 0 {
		t.Errorf("Applied = %q", got)
	}
}

func TestAnInstanceInUseByAChangedAssignmentIsAnErrorAndKept(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0, uuid1)
	e := v.enforcer()
	mustApply(t, e, assign("a-1", "1g.5gb", uuid0))
	dev := v.uuids()[0]
	v.fake.Lock(func(f *migtest.Fake) { f.InUse[dev] = true })
	wantErr(t, e.Apply(ctx, assign("a-1", "1g.5gb", uuid1)), "is still used by a process")
	if rec := v.state().Assignments["a-1"]; len(rec.Instances) != 1 || rec.Instances[0].MIGUUID != dev {
		t.Errorf("state record = %+v, want the old instance kept", rec)
	}
	if got := v.visible("alice"); got != dev {
		t.Errorf("CUDA_VISIBLE_DEVICES = %q, want the old device until the change succeeds", got)
	}
	v.fake.Lock(func(f *migtest.Fake) { delete(f.InUse, dev) })
	mustApply(t, e, assign("a-1", "1g.5gb", uuid1))
	if in := v.instances(); len(in) != 1 || in[0].GPU != uuid1 {
		t.Errorf("instances = %+v, want one on GPU 1", in)
	}
}

func TestADestroyCutShortIsFinishedByTheNextRemove(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0)
	e := v.enforcer()
	mustApply(t, e, assign("a-1", "2g.10gb", uuid0))
	gi := v.instances()[0].GI
	// The agent died after -dci: the MIG device is gone, the GPU instance
	// is not.
	v.markDestroying("a-1")
	if _, _, err := v.fake.Run(ctx, "nvidia-smi", "mig", "-i", "0", "-dci", "-gi", strconv.Itoa(gi), "-ci", "0"); err != nil {
		t.Fatal(err)
	}
	if err := v.enforcer().Remove(ctx, "a-1"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if in := v.instances(); len(in) != 0 {
		t.Errorf("instances left: %+v", in)
	}
}

func TestAGPUInstanceSomeoneElseMadeAfterAResetIsNotOurs(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0)
	e := v.enforcer()
	mustApply(t, e, assign("a-1", "1g.5gb", uuid0))
	v.fake.Reset(uuid0)
	// An admin's instance, with the same GPU instance id and profile.
	if _, _, err := v.fake.Run(ctx, "nvidia-smi", "mig", "-i", "0", "-cgi", "1g.5gb", "-C"); err != nil {
		t.Fatal(err)
	}
	admins := v.instances()
	v.fake.Calls()
	if err := e.Remove(ctx, "a-1"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if m := v.mutations(); len(m) != 0 {
		t.Errorf("Remove ran %q", m)
	}
	if in := v.instances(); !slices.Equal(in, admins) {
		t.Errorf("instances = %+v, want the admin's %+v untouched", in, admins)
	}
	if got, _ := e.Applied(ctx); len(got) != 0 {
		t.Errorf("Applied = %q", got)
	}
}

func TestLargestPrefersThePlainProfileOfTheWholeGPU(t *testing.T) {
	ps := []profile{
		{name: "1g.10gb+me", slices: 1, gb: 10}, {name: "7g.80gb+gfx", slices: 7, gb: 80},
		{name: "7g.80gb", slices: 7, gb: 80}, {name: "4g.40gb", slices: 4, gb: 40}, {name: "7g.40gb", slices: 7, gb: 40},
	}
	if got := largest(ps).name; got != "7g.80gb" {
		t.Errorf("largest = %s, want 7g.80gb", got)
	}
}
