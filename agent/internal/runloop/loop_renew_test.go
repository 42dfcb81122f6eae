package runloop

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/identity"
	"github.com/gpulab/gpulab/agent/internal/identity/identitytest"
)

func TestRenewsFromTwoThirdsOfTheLifetimeAndHeartbeatsWithTheNewCertificate(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab test CA")
	srv := newHBServer(t, ca)
	srv.setReply(func(int, *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
		return &agentv1.HeartbeatResponse{HeartbeatIntervalS: 3600}, nil
	})
	pki := identitytest.NewServer(t, ca, identitytest.Config{Lifetime: 30 * 24 * time.Hour})
	// A 30-day certificate, 21 days old: pki (real time) is past 2/3, 20 days.
	notBefore := time.Now().Truncate(time.Second).Add(-21 * 24 * time.Hour)
	id := newIdentity(t, ca, srv.Addr, pki.Addr, notBefore, notBefore.Add(30*24*time.Hour))
	first := id.Certificate().SerialNumber.String()
	// The loop's clock starts 2.5 h before 2/3; heartbeats come every hour.
	clock := newFakeClock(id.RenewAt().Add(-150 * time.Minute))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clock.onSleep = func(n int, _ time.Duration) {
		if n == 5 {
			cancel()
		}
	}
	var log logBuffer
	wait := startLoop(t, ctx, Config{Identity: id, Hardware: fakeHardware{}, Reconciler: &recReconciler{}, Clock: clock, Log: log.logger()})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := pki.RenewCalls(); got != 1 {
		t.Fatalf("Renew called %d times, want once", got)
	}
	renewed := pki.LastRenewed().SerialNumber.String()
	_, serials := srv.requests()
	want := []string{first, first, first, renewed, renewed}
	if !slices.Equal(serials, want) {
		t.Errorf("client certificates per heartbeat = %v, want %v", serials, want)
	}
	if id.Certificate().SerialNumber.String() != renewed {
		t.Errorf("the identity does not hold the renewed certificate")
	}
	if log.lines("renewed the node certificate") != 1 {
		t.Errorf("log:\n%s", log.String())
	}
}

func TestAFailedRenewalIsRetriedWhileHeartbeatsGoOn(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab test CA")
	srv := newHBServer(t, ca)
	notBefore := time.Now().Truncate(time.Second).Add(-6 * 24 * time.Hour)
	id := newIdentity(t, ca, srv.Addr, closedAddr(t), notBefore, notBefore.Add(7*24*time.Hour))
	clock := newFakeClock(time.Now())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clock.onSleep = func(n int, _ time.Duration) {
		if n == 3 {
			cancel()
		}
	}
	var log logBuffer
	wait := startLoop(t, ctx, Config{Identity: id, Hardware: fakeHardware{}, Reconciler: &recReconciler{}, Clock: clock, Log: log.logger()})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if n := srv.count(); n != 3 {
		t.Errorf("got %d heartbeats, want 3", n)
	}
	if n := log.lines("could not renew the node certificate"); n != 1 {
		t.Errorf("renewal failure logged %d times, want once:\n%s", n, log.String())
	}
}

func TestARefusedNodeTakesAwayEveryAccessItManagesBeforeTheLoopEnds(t *testing.T) {
	t.Run("heartbeat UNAUTHENTICATED", func(t *testing.T) {
		ca := identitytest.NewCA(t, "gpulab test CA")
		srv := newHBServer(t, ca)
		srv.setReply(func(n int, _ *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
			if n == 1 {
				return &agentv1.HeartbeatResponse{Assignments: []*agentv1.Assignment{assignment("a1", time.Time{})}}, nil
			}
			return nil, status.Error(codes.Unauthenticated, "the node has been removed")
		})
		nb, na := freshValidity()
		id := newIdentity(t, ca, srv.Addr, closedAddr(t), nb, na)
		rec := &recReconciler{}
		var log logBuffer
		err := startLoop(t, t.Context(), Config{Identity: id, Hardware: fakeHardware{}, Reconciler: rec, Clock: newFakeClock(time.Now()), Log: log.logger()})()
		if !errors.Is(err, identity.ErrReenrollNeeded) {
			t.Fatalf("Run = %v, want ErrReenrollNeeded", err)
		}
		if srv.count() != 2 {
			t.Errorf("got %d heartbeats, want 2", srv.count())
		}
		// The saved state is not applied again: nobody keeps access on a node
		// the control plane no longer accepts.
		if calls, _ := rec.applied(); !slices.EqualFunc(calls, [][]string{{"a1"}, {}}, slices.Equal) {
			t.Errorf("reconciler calls = %v, want [[a1] []]: the assignment, then nobody before exiting", calls)
		}
		if _, err := os.Stat(filepath.Join(id.Dir(), StateFile)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the saved desired state is still there (%v): a restart without the control plane would apply it again", err)
		}
		if log.lines("took away the access of every account this agent manages") != 1 {
			t.Errorf("the removal is not logged once:\n%s", log.String())
		}
	})
	t.Run("renewal refused", func(t *testing.T) {
		ca := identitytest.NewCA(t, "gpulab test CA")
		srv := newHBServer(t, ca)
		pki := identitytest.NewServer(t, ca, identitytest.Config{})
		notBefore := time.Now().Truncate(time.Second).Add(-6 * 24 * time.Hour)
		id := newIdentity(t, ca, srv.Addr, pki.Addr, notBefore, notBefore.Add(7*24*time.Hour))
		pki.Revoke(id.Certificate())
		rec := &recReconciler{}
		err := startLoop(t, t.Context(), Config{Identity: id, Hardware: fakeHardware{}, Reconciler: rec, Clock: newFakeClock(time.Now())})()
		if !errors.Is(err, identity.ErrReenrollNeeded) {
			t.Fatalf("Run = %v, want ErrReenrollNeeded", err)
		}
		if srv.count() != 0 {
			t.Errorf("a heartbeat was sent with a revoked certificate")
		}
		// No desired state was ever known, and still every managed account
		// goes: the reconciler finds them on the host (their marker).
		if calls, _ := rec.applied(); !slices.EqualFunc(calls, [][]string{{}}, slices.Equal) {
			t.Errorf("reconciler calls = %v, want [[]]: nobody, before exiting", calls)
		}
	})
	t.Run("saved state from an earlier run", func(t *testing.T) {
		ca := identitytest.NewCA(t, "gpulab test CA")
		srv := newHBServer(t, ca)
		srv.setReply(func(int, *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
			return nil, status.Error(codes.Unauthenticated, "the client certificate has been revoked")
		})
		nb, na := freshValidity()
		id := newIdentity(t, ca, srv.Addr, closedAddr(t), nb, na)
		saveState(t, id, &agentv1.HeartbeatResponse{Assignments: []*agentv1.Assignment{assignment("a1", time.Time{})}})
		rec := &recReconciler{}
		err := startLoop(t, t.Context(), Config{Identity: id, Hardware: fakeHardware{}, Reconciler: rec, Clock: newFakeClock(time.Now())})()
		if !errors.Is(err, identity.ErrReenrollNeeded) {
			t.Fatalf("Run = %v, want ErrReenrollNeeded", err)
		}
		if calls, _ := rec.applied(); !slices.EqualFunc(calls, [][]string{{}}, slices.Equal) {
			t.Errorf("reconciler calls = %v, want [[]]: the saved assignment is never applied again", calls)
		}
	})
}
