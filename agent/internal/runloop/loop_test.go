package runloop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/identity"
	"github.com/gpulab/gpulab/agent/internal/identity/identitytest"
)

func TestHeartbeatReportsHardwareAndAppliedStateAndFollowsTheInterval(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab test CA")
	srv := newHBServer(t, ca)
	srv.setReply(func(int, *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
		return &agentv1.HeartbeatResponse{Assignments: []*agentv1.Assignment{assignment("a1", time.Time{})}, HeartbeatIntervalS: 7}, nil
	})
	nb, na := freshValidity()
	id := newIdentity(t, ca, srv.Addr, closedAddr(t), nb, na)
	clock := newFakeClock(time.Now())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clock.onSleep = func(n int, _ time.Duration) {
		if n == 3 {
			cancel()
		}
	}
	rec := &recReconciler{}
	var log logBuffer
	wait := startLoop(t, ctx, Config{Identity: id, Version: "1.2.3-test", Hardware: fakeHardware{problems: []string{"nvidia-smi failed: boom"}},
		Reconciler: rec, Clock: clock, Log: log.logger()})
	if err := wait(); err != nil {
		t.Fatalf("Run = %v, want nil after cancel", err)
	}

	reqs, _ := srv.requests()
	if len(reqs) != 3 {
		t.Fatalf("got %d heartbeats, want 3", len(reqs))
	}
	for i, req := range reqs {
		if req.GetAgentVersion() != "1.2.3-test" {
			t.Errorf("heartbeat %d: agent_version = %q", i, req.GetAgentVersion())
		}
		if !proto.Equal(req.GetHardware(), testHardware) {
			t.Errorf("heartbeat %d: hardware = %v, want %v", i, req.GetHardware(), testHardware)
		}
		// The hardware problems go with every heartbeat, once.
		if got := req.GetAppliedState().GetErrors(); !slices.Equal(got, []string{"nvidia-smi failed: boom"}) {
			t.Errorf("heartbeat %d: applied_state.errors = %q", i, got)
		}
	}
	if got := reqs[0].GetAppliedState().GetAssignments(); len(got) != 0 {
		t.Errorf("first heartbeat reports %v applied before any reconcile", got)
	}
	want := &agentv1.AppliedState{
		Assignments: []*agentv1.AppliedAssignment{{AssignmentId: "a1", State: agentv1.ApplyState_APPLY_STATE_APPLIED}},
		Errors:      []string{"nvidia-smi failed: boom"},
	}
	for i := 1; i < 3; i++ {
		if !proto.Equal(reqs[i].GetAppliedState(), want) {
			t.Errorf("heartbeat %d: applied_state = %v, want %v", i, reqs[i].GetAppliedState(), want)
		}
	}
	calls, _ := rec.applied()
	if len(calls) != 3 || !slices.Equal(calls[0], []string{"a1"}) {
		t.Errorf("reconciler calls = %v, want [a1] three times", calls)
	}
	for i, d := range clock.slept() {
		within(t, fmt.Sprintf("wait %d", i+1), d, 6300*time.Millisecond, 7700*time.Millisecond)
	}
	if n := log.lines("control plane reachable"); n != 1 {
		t.Errorf("logged 'reachable' %d times, want once:\n%s", n, log.String())
	}
}

func TestIntervalIsThirtySecondsUntilTheServerNamesOne(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab test CA")
	srv := newHBServer(t, ca)
	srv.setReply(func(n int, _ *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
		if n == 1 {
			return &agentv1.HeartbeatResponse{}, nil // no interval
		}
		return &agentv1.HeartbeatResponse{HeartbeatIntervalS: 120}, nil
	})
	nb, na := freshValidity()
	id := newIdentity(t, ca, srv.Addr, closedAddr(t), nb, na)
	clock := newFakeClock(time.Now())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clock.onSleep = func(n int, _ time.Duration) {
		if n == 2 {
			cancel()
		}
	}
	var log logBuffer
	wait := startLoop(t, ctx, Config{Identity: id, Hardware: fakeHardware{}, Reconciler: &recReconciler{}, Clock: clock, Log: log.logger()})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	sleeps := clock.slept()
	within(t, "first wait", sleeps[0], 27*time.Second, 33*time.Second)
	within(t, "second wait", sleeps[1], 108*time.Second, 132*time.Second)
	if log.lines("heartbeat interval changed") != 1 {
		t.Errorf("the interval change was not logged once:\n%s", log.String())
	}
}

func TestBacksOffWithACapWhileTheControlPlaneIsDownAndRecovers(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab test CA")
	srv := newHBServer(t, ca)
	srv.setReply(func(int, *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
		return &agentv1.HeartbeatResponse{HeartbeatIntervalS: 3}, nil
	})
	srv.stop()
	nb, na := freshValidity()
	id := newIdentity(t, ca, srv.Addr, closedAddr(t), nb, na)
	clock := newFakeClock(time.Now())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const downFor = 12
	clock.onSleep = func(n int, _ time.Duration) {
		if n == downFor {
			srv.start()
		}
		if srv.count() >= 2 {
			cancel()
		}
	}
	rec := &recReconciler{}
	var log logBuffer
	wait := startLoop(t, ctx, Config{Identity: id, Hardware: fakeHardware{}, Reconciler: rec, Clock: clock, Log: log.logger()})
	if err := wait(); err != nil {
		t.Fatal(err)
	}

	sleeps := clock.slept()
	for i := range downFor {
		full := min(BackoffBase<<i, BackoffMax)
		within(t, fmt.Sprintf("backoff %d", i+1), sleeps[i], full*8/10, full)
	}
	if sleeps[downFor-1] < 4*time.Minute {
		t.Errorf("backoff did not reach its cap: %v", sleeps[:downFor])
	}
	within(t, "wait after recovery", sleeps[len(sleeps)-1], 2700*time.Millisecond, 3300*time.Millisecond)
	if n := log.lines("control plane unreachable"); n != 1 {
		t.Errorf("logged 'unreachable' %d times, want once per outage:\n%s", n, log.String())
	}
	if n := log.lines("control plane reachable"); n != 1 {
		t.Errorf("logged 'reachable' %d times, want once:\n%s", n, log.String())
	}
	// Nothing was ever desired: the outage must not make the node remove anyone.
	calls, _ := rec.applied()
	if len(calls) != 2 {
		t.Errorf("reconciler calls = %v, want only the two after the recovery", calls)
	}
}

func TestKeepsTheLastDesiredStateAcrossARestartWhileUnreachableAndDropsExpired(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab test CA")
	srv := newHBServer(t, ca)
	t0 := time.Now().Truncate(time.Second)
	srv.setReply(func(int, *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
		return &agentv1.HeartbeatResponse{HeartbeatIntervalS: 30, Assignments: []*agentv1.Assignment{
			assignment("keep", time.Time{}),
			assignment("later", t0.Add(2*time.Hour)),
			assignment("soon", t0.Add(time.Hour)),
		}}, nil
	})
	nb, na := freshValidity()
	id := newIdentity(t, ca, srv.Addr, closedAddr(t), nb, na)

	// First run: the control plane answers; its reply is saved.
	clock := newFakeClock(t0)
	ctx, cancel := context.WithCancel(t.Context())
	clock.onSleep = func(int, time.Duration) { cancel() }
	rec := &recReconciler{}
	if err := startLoop(t, ctx, Config{Identity: id, Hardware: fakeHardware{}, Reconciler: rec, Clock: clock})(); err != nil {
		t.Fatal(err)
	}
	cancel()
	st, err := os.Stat(filepath.Join(id.Dir(), StateFile))
	if err != nil {
		t.Fatalf("desired state not saved: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s mode = %04o, want 0600", StateFile, st.Mode().Perm())
	}

	// Second run, 90 minutes later, with the control plane down.
	srv.stop()
	id2, err := identity.Load(id.Dir())
	if err != nil {
		t.Fatal(err)
	}
	clock = newFakeClock(t0.Add(90 * time.Minute))
	rec = &recReconciler{clock: clock}
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	clock.onSleep = func(int, time.Duration) {
		if calls, _ := rec.applied(); len(calls) > 0 && slices.Equal(calls[len(calls)-1], []string{"keep"}) {
			cancel()
		}
	}
	var log logBuffer
	if err := startLoop(t, ctx, Config{Identity: id2, Hardware: fakeHardware{}, Reconciler: rec, Clock: clock, Log: log.logger()})(); err != nil {
		t.Fatal(err)
	}
	calls, at := rec.applied()
	if len(calls) < 2 {
		t.Fatalf("reconciler calls = %v, want the saved state applied while unreachable", calls)
	}
	if !slices.Equal(calls[0], []string{"keep", "later"}) {
		t.Errorf("first apply after the restart = %v, want [keep later] (soon expired)", calls[0])
	}
	last := len(calls) - 1
	if !slices.Equal(calls[last], []string{"keep"}) {
		t.Errorf("last apply = %v, want [keep]", calls[last])
	}
	// The loop woke when "later" ended, not at the next backoff.
	if !at[last].Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("'later' was removed at %v, want at its end %v", at[last], t0.Add(2*time.Hour))
	}
	for i := range last {
		if !slices.Contains(calls[i], "later") {
			t.Errorf("'later' was dropped early, at %v", at[i])
		}
	}
	if log.lines("loaded the last desired state") != 1 || log.lines("control plane unreachable") != 1 {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestBackoffAndJitterStayInTheirBounds(t *testing.T) {
	for _, r := range []float64{0, 0.5, 0.999999} {
		for n := 1; n <= 100; n++ {
			full := BackoffMax
			if n <= 7 {
				full = min(BackoffBase<<(n-1), BackoffMax)
			}
			within(t, "backoff", backoff(n, r), full*8/10, full)
		}
		within(t, "jitter", jitter(30*time.Second, r), 27*time.Second, 33*time.Second)
	}
}
