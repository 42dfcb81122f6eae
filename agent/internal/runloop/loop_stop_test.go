package runloop

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/identity/identitytest"
)

func TestStopsWhileWaitingWithTheRealClock(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab test CA")
	srv := newHBServer(t, ca)
	srv.setReply(func(int, *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
		return &agentv1.HeartbeatResponse{HeartbeatIntervalS: 3600}, nil
	})
	nb, na := freshValidity()
	id := newIdentity(t, ca, srv.Addr, closedAddr(t), nb, na)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	wait := startLoop(t, ctx, Config{Identity: id, Hardware: fakeHardware{}, Reconciler: &recReconciler{}})
	for deadline := time.Now().Add(10 * time.Second); srv.count() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeat within 10 s")
		}
	}
	start := time.Now()
	cancel()
	if err := wait(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stopping took %v", took)
	}
}

func TestACancelDuringAHeartbeatFinishesTheCycle(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab test CA")
	srv := newHBServer(t, ca)
	srv.entered, srv.release = make(chan struct{}), make(chan struct{})
	srv.setReply(func(int, *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
		return &agentv1.HeartbeatResponse{Assignments: []*agentv1.Assignment{assignment("a1", time.Time{})}}, nil
	})
	nb, na := freshValidity()
	id := newIdentity(t, ca, srv.Addr, closedAddr(t), nb, na)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rec := &recReconciler{}
	wait := startLoop(t, ctx, Config{Identity: id, Hardware: fakeHardware{}, Reconciler: rec, Clock: newFakeClock(time.Now())})
	select {
	case <-srv.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no heartbeat within 10 s")
	}
	cancel() // SIGTERM in the middle of the heartbeat
	close(srv.release)
	if err := wait(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if calls, _ := rec.applied(); len(calls) != 1 || !slices.Equal(calls[0], []string{"a1"}) {
		t.Errorf("reconciler calls = %v, want the reply applied before stopping", calls)
	}
	if _, err := os.Stat(filepath.Join(id.Dir(), StateFile)); err != nil {
		t.Errorf("the reply was not saved: %v", err)
	}
}
