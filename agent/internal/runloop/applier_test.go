package runloop

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/identity/identitytest"
)

// gateReconciler records each call and blocks every call until released.
type gateReconciler struct {
	recReconciler
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func newGateReconciler() *gateReconciler {
	return &gateReconciler{gate: make(chan struct{}), entered: make(chan struct{}, 100)}
}

func (g *gateReconciler) Apply(ctx context.Context, desired []*agentv1.Assignment) *agentv1.AppliedState {
	g.entered <- struct{}{}
	<-g.gate
	return g.recReconciler.Apply(ctx, desired)
}

func (g *gateReconciler) release() { g.once.Do(func() { close(g.gate) }) }

func ids(names ...string) []*agentv1.Assignment {
	var out []*agentv1.Assignment
	for _, n := range names {
		out = append(out, assignment(n, time.Time{}))
	}
	return out
}

func TestASlowReconcileCoalescesWhatArrivesMeanwhileAndStopFinishesIt(t *testing.T) {
	rec := newGateReconciler()
	a := startApplier(rec, slog.New(slog.DiscardHandler))
	defer rec.release()

	a.submit(ids("a"))
	<-rec.entered
	if a.wait(10 * time.Millisecond) {
		t.Fatal("wait reported a blocked reconcile finished")
	}
	if a.last() != nil {
		t.Errorf("last = %v before any reconcile finished", a.last())
	}
	// Two more desired states while it runs: only the latest is applied.
	a.submit(ids("b"))
	a.submit(ids("c", "d"))
	rec.release()
	if !a.wait(5 * time.Second) {
		t.Fatal("the reconciles did not finish")
	}
	calls, _ := rec.applied()
	if want := [][]string{{"a"}, {"c", "d"}}; !slices.EqualFunc(calls, want, slices.Equal) {
		t.Errorf("applied %v, want %v", calls, want)
	}
	if got := a.last().GetAssignments(); len(got) != 2 || got[0].GetAssignmentId() != "c" {
		t.Errorf("last = %v, want the outcome of [c d]", got)
	}

	// A state submitted just before the stop is still applied.
	a.submit(ids("e"))
	a.stop()
	calls, _ = rec.applied()
	if !slices.Equal(calls[len(calls)-1], []string{"e"}) {
		t.Errorf("applied %v, want [e] applied before stop returned", calls)
	}
}

func TestHeartbeatsGoOnDuringASlowReconcile(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab test CA")
	srv := newHBServer(t, ca)
	srv.setReply(func(int, *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
		return &agentv1.HeartbeatResponse{Assignments: ids("slow"), HeartbeatIntervalS: 7}, nil
	})
	nb, na := freshValidity()
	id := newIdentity(t, ca, srv.Addr, closedAddr(t), nb, na)
	clock := newFakeClock(time.Now())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := newGateReconciler()
	clock.onSleep = func(n int, _ time.Duration) {
		if n == 4 {
			rec.release() // the reconcile ends only after four heartbeats
		}
		if n == 6 {
			cancel()
		}
	}
	var log logBuffer
	err := startLoop(t, ctx, Config{Identity: id, Hardware: fakeHardware{}, Reconciler: rec, Clock: clock,
		Log: log.logger(), ReconcileGrace: 200 * time.Millisecond})()
	if err != nil {
		t.Fatal(err)
	}
	reqs, _ := srv.requests()
	if len(reqs) != 6 {
		t.Fatalf("%d heartbeats, want 6 (one per cycle, the reconcile blocked through four)", len(reqs))
	}
	for i := range 4 {
		if got := reqs[i].GetAppliedState().GetAssignments(); len(got) != 0 {
			t.Errorf("heartbeat %d reports %v applied while the reconcile was still running", i, got)
		}
	}
	// Released after the fourth cycle; the fifth waits for its own reconcile,
	// so the sixth reports it.
	if got := reqs[5].GetAppliedState().GetAssignments(); len(got) != 1 || got[0].GetAssignmentId() != "slow" {
		t.Errorf("heartbeat 6 reports %v, want the finished reconcile", got)
	}
	if log.lines("reconcile still running") != 1 {
		t.Errorf("want the slow reconcile logged once:\n%s", log.String())
	}
}
