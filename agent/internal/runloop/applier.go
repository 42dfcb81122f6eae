package runloop

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
)

// reconcileGrace is how long the loop waits for the reconcile it started
// before it goes on (sleeps, heartbeats). A reconcile usually takes well
// under a second, and then the loop is as if it ran it inline; one that takes
// minutes (a container image pulled, a Proxmox guest created) goes on in the
// background, and heartbeats report the last finished outcome meanwhile,
// because a node whose heartbeats waited that long would be marked offline.
const reconcileGrace = 5 * time.Second

// applier runs the Reconciler on a goroutine of its own, off the heartbeat
// path. Submissions coalesce: while a reconcile runs, only the latest
// desired list waits, because the list is complete and supersedes any
// earlier one.
type applier struct {
	rec Reconciler
	log *slog.Logger

	mu      sync.Mutex
	pending []*agentv1.Assignment
	has     bool                  // pending holds a submission (nil is "nobody")
	idle    chan struct{}         // closed when the running or pending work is done
	applied *agentv1.AppliedState // the last reconcile's outcome
	logKey  string                // the last reconcile problems logged
	stopped bool

	wake chan struct{}
	done chan struct{}
}

func startApplier(rec Reconciler, log *slog.Logger) *applier {
	a := &applier{rec: rec, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go a.run()
	return a
}

// submit asks for desired to be applied; it does not wait.
func (a *applier) submit(desired []*agentv1.Assignment) {
	a.mu.Lock()
	a.pending, a.has = desired, true
	if a.idle == nil {
		a.idle = make(chan struct{})
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default: // already woken: it will take the latest pending
	}
}

// wait waits up to grace for the reconcile in progress, and any pending, to
// finish. It reports whether they did.
func (a *applier) wait(grace time.Duration) bool {
	a.mu.Lock()
	idle := a.idle
	a.mu.Unlock()
	if idle == nil {
		return true
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

// last returns the outcome of the last finished reconcile.
func (a *applier) last() *agentv1.AppliedState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.applied
}

// stop applies what is pending, then ends the goroutine: a reconcile is
// never cut in half, and a desired state received before the stop is
// applied.
func (a *applier) stop() {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	<-a.done
}

func (a *applier) run() {
	defer close(a.done)
	// The context is never cancelled: see Reconciler's contract.
	ctx := context.Background()
	for range a.wake {
		for {
			a.mu.Lock()
			if !a.has {
				if a.idle != nil {
					close(a.idle)
					a.idle = nil
				}
				stopped := a.stopped
				a.mu.Unlock()
				if stopped {
					return
				}
				break
			}
			desired := a.pending
			a.pending, a.has = nil, false
			a.mu.Unlock()

			applied := a.rec.Apply(ctx, desired)

			a.mu.Lock()
			a.applied = applied
			a.logReconcile()
			a.mu.Unlock()
		}
	}
}

// logReconcile logs the reconcile's problems when they change. Called with
// mu held.
func (a *applier) logReconcile() {
	var failed []string
	for _, as := range a.applied.GetAssignments() {
		if as.GetState() == agentv1.ApplyState_APPLY_STATE_FAILED {
			failed = append(failed, as.GetAssignmentId()+": "+as.GetError())
		}
	}
	key := strings.Join(a.applied.GetErrors(), "\n") + "\x00" + strings.Join(failed, "\n")
	if key == a.logKey {
		return
	}
	if len(failed) == 0 && len(a.applied.GetErrors()) == 0 {
		a.log.Info("reconcile applied every assignment", "assignments", len(a.applied.GetAssignments()))
	} else {
		a.log.Warn("reconcile reported problems", "errors", a.applied.GetErrors(), "failed_assignments", failed)
	}
	a.logKey = key
}
