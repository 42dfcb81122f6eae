package runloop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/identity"
)

const (
	// DefaultInterval is the wait between heartbeats until a reply names one:
	// the control plane's GPULAB_HEARTBEAT_INTERVAL_S default (API.md).
	DefaultInterval = 30 * time.Second
	// BackoffBase and BackoffMax bound the wait between attempts while the
	// control plane cannot be reached: soon enough to notice a restart, and
	// at most one attempt per node every 5 minutes during a long outage.
	BackoffBase = 5 * time.Second
	BackoffMax  = 5 * time.Minute
	// minInterval keeps a bad heartbeat_interval_s from making a busy loop.
	minInterval = time.Second
	// callTimeout bounds one heartbeat: one small message, plus gRPC's 20 s
	// connect timeout when the connection has to be made again.
	callTimeout = 30 * time.Second
	// renewTimeout bounds one renewal, as enroll bounds an enrollment.
	renewTimeout = time.Minute
)

// HardwareCollector is what the heartbeat reports as hardware;
// discover.Collector is the real one (see its contract).
type HardwareCollector interface {
	Collect(ctx context.Context) (*agentv1.Hardware, []string)
}

// Config is what Run needs. Identity, Hardware and Reconciler are required.
type Config struct {
	Identity   *identity.Identity
	Version    string // agent_version in heartbeats
	Hardware   HardwareCollector
	Reconciler Reconciler
	Clock      Clock          // nil: RealClock
	Log        *slog.Logger   // nil: discard
	Rand       func() float64 // in [0, 1), for jitter; nil: math/rand/v2
	// ReconcileGrace is how long a cycle waits for its reconcile before it
	// goes on; 0 is reconcileGrace.
	ReconcileGrace time.Duration
}

// Run is the agent's main loop; see the package documentation. It returns
// nil once ctx is cancelled, an error matching identity.ErrReenrollNeeded
// when the node must enroll again, and another error only when it cannot
// start.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Identity == nil || cfg.Hardware == nil || cfg.Reconciler == nil {
		return errors.New("run: identity, hardware collector and reconciler are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.ReconcileGrace <= 0 {
		cfg.ReconcileGrace = reconcileGrace
	}
	l := &loop{Config: cfg, interval: DefaultInterval}
	l.endpoint = cfg.Identity.Info().HeartbeatEndpoint
	l.Log.Info("agent starting", "version", cfg.Version, "node_id", cfg.Identity.NodeID(),
		"heartbeat_endpoint", l.endpoint, "dir", cfg.Identity.Dir())

	saved, savedAt, err := loadState(cfg.Identity.Dir(), cfg.Identity.NodeID())
	if err != nil {
		// A damaged file is no reason not to run: the next reply replaces it.
		l.Log.Warn("ignoring the saved desired state", "error", err)
	} else if saved != nil {
		l.desired, l.saved = saved, saved
		l.Log.Info("loaded the last desired state; it is applied while the control plane cannot be reached",
			"assignments", len(saved.GetAssignments()), "saved_at", savedAt.Format(time.RFC3339))
	}

	if err := l.dial(); err != nil {
		return err
	}
	defer func() { _ = l.conn.Close() }()
	l.applier = startApplier(cfg.Reconciler, l.Log)
	// Runs before the connection closes: the last submitted state is
	// applied before Run returns.
	defer l.applier.stop()

	// A cycle in progress is finished when ctx is cancelled: a reconcile cut
	// in half would leave a user half created or half removed.
	work := context.WithoutCancel(ctx)
	for {
		wait, err := l.cycle(work)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if l.Clock.Sleep(ctx, wait) != nil {
			return nil
		}
	}
}

type link int

const (
	linkUnknown link = iota
	linkUp
	linkDown
)

type loop struct {
	Config
	endpoint string
	conn     *grpc.ClientConn
	client   agentv1.HeartbeatClient

	desired  *agentv1.HeartbeatResponse // last desired state; nil: none known
	saved    *agentv1.HeartbeatResponse // what StateFile holds, to write it only on a change
	saveErr  string                     // the last failure to save, reported in heartbeats
	applier  *applier                   // runs the reconciler off the heartbeat path
	interval time.Duration

	link          link
	failures      int  // heartbeats failed in a row
	renewFailing  bool // the last renewal attempt failed
	slowReconcile bool // the last reconcile outlived reconcileGrace
}

func (l *loop) dial() error {
	host, _, err := net.SplitHostPort(l.endpoint)
	if err != nil {
		return fmt.Errorf("heartbeat endpoint %q: %w", l.endpoint, err)
	}
	conn, err := identity.Dial(l.endpoint, l.Identity.ClientTLSConfig(host))
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	l.conn, l.client = conn, agentv1.NewHeartbeatClient(conn)
	return nil
}

// cycle is one renewal check, heartbeat and reconcile. It returns how long
// to wait before the next one, or an error that ends the loop.
func (l *loop) cycle(ctx context.Context) (time.Duration, error) {
	if err := l.renewIfDue(ctx); err != nil {
		return 0, err
	}
	hardware, problems := l.Hardware.Collect(ctx)
	if l.saveErr != "" {
		problems = append(problems, l.saveErr)
	}
	req := &agentv1.HeartbeatRequest{
		AgentVersion: l.Version,
		Hardware:     hardware,
		AppliedState: withProblems(l.applier.last(), problems),
	}
	if l.failures > 0 {
		// gRPC keeps its own reconnect backoff (up to 2 minutes); the loop's
		// backoff decides when to try, so start the attempt now.
		l.conn.ResetConnectBackoff()
	}
	callCtx, cancel := context.WithTimeout(ctx, callTimeout)
	resp, err := l.client.Heartbeat(callCtx, req)
	cancel()
	now := l.Clock.Now()

	if err != nil {
		st := status.Convert(err)
		if st.Code() == codes.Unauthenticated {
			return 0, l.refused(fmt.Errorf("heartbeat to %s refused: %s: %w", l.endpoint, st.Message(), identity.ErrReenrollNeeded))
		}
		l.failures++
		if l.link != linkDown {
			l.Log.Warn("control plane unreachable; retrying with backoff, applying the last desired state meanwhile",
				"endpoint", l.endpoint, "error", err, "backoff_max", BackoffMax,
				"desired_assignments", len(l.desired.GetAssignments()), "desired_known", l.desired != nil)
			l.link = linkDown
		}
		l.apply(now)
		return l.until(backoff(l.failures, l.Rand()), now), nil
	}

	interval := l.interval
	if s := resp.GetHeartbeatIntervalS(); s > 0 {
		interval = max(time.Duration(s)*time.Second, minInterval)
	}
	if l.link != linkUp {
		l.Log.Info("control plane reachable", "endpoint", l.endpoint, "failed_attempts", l.failures,
			"interval", interval, "assignments", len(resp.GetAssignments()))
	} else if interval != l.interval {
		l.Log.Info("heartbeat interval changed", "interval", interval)
	}
	l.link, l.failures, l.interval = linkUp, 0, interval
	l.desired = resp
	l.save(now)
	l.apply(now)
	return l.until(jitter(l.interval, l.Rand()), now), nil
}

// renewIfDue renews the certificate once it is in its renewal window and
// then reconnects, so that the next handshake presents the new one. Only a
// refusal that renewing cannot cure ends the loop; anything else is tried
// again next cycle, with the current certificate still in use.
func (l *loop) renewIfDue(ctx context.Context) error {
	if !l.Identity.NeedsRenewal(l.Clock.Now()) {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, renewTimeout)
	err := l.Identity.Renew(rctx)
	cancel()
	switch {
	case errors.Is(err, identity.ErrReenrollNeeded):
		return l.refused(err)
	case err != nil:
		if !l.renewFailing {
			l.Log.Warn("could not renew the node certificate; trying again every cycle",
				"valid_until", l.Identity.Certificate().NotAfter.UTC().Format(time.RFC3339), "error", err)
			l.renewFailing = true
		}
		return nil
	}
	l.renewFailing = false
	cert := l.Identity.Certificate()
	l.Log.Info("renewed the node certificate", "valid_until", cert.NotAfter.UTC().Format(time.RFC3339),
		"renew_from", l.Identity.RenewAt().UTC().Format(time.RFC3339))
	// A connection keeps the certificate of its handshake: make a new one.
	_ = l.conn.Close()
	return l.dial()
}

// apply hands the desired state in force at now to the reconciler, which
// runs on its own goroutine (see applier). With no desired state known it
// does nothing: that is "unknown", not "nobody".
func (l *loop) apply(now time.Time) {
	if l.desired == nil {
		return
	}
	l.applier.submit(inForce(l.desired.GetAssignments(), now))
	done := l.applier.wait(l.ReconcileGrace)
	if !done && !l.slowReconcile {
		l.Log.Info("reconcile still running; heartbeats go on meanwhile, reporting the last finished one", "waited", l.ReconcileGrace)
	}
	l.slowReconcile = !done
}

// refused ends the node's access because the control plane no longer
// accepts its identity (cause matches identity.ErrReenrollNeeded): the
// node was deleted, its certificate revoked (a new enrollment token, a new
// enrollment) or expired. The node can no longer learn what it must enforce,
// so whatever it enforces now would outlive every revocation: every account
// it manages loses its access (the reconciler locks or removes it, as
// GPULAB_ON_REVOKE says) and every enforcement is undone, whether or not a
// desired state is known, and the saved state goes, so that no later start
// applies it again. It returns cause once the reconcile has finished.
func (l *loop) refused(cause error) error {
	l.Log.Warn("the control plane no longer accepts this node: taking away the access of every account this agent manages before stopping",
		"reason", cause.Error())
	l.desired, l.saved = nil, nil
	if err := removeState(l.Identity.Dir()); err != nil {
		l.Log.Error("could not remove the saved desired state; a start while the control plane cannot be reached would apply it again",
			"error", err)
	}
	l.applier.submit(nil)
	l.applier.stop() // waits for the reconcile: nothing is cut short
	applied := l.applier.last()
	var failed []string
	for _, as := range applied.GetAssignments() {
		if as.GetState() == agentv1.ApplyState_APPLY_STATE_FAILED {
			failed = append(failed, as.GetAssignmentId()+": "+as.GetError())
		}
	}
	if len(failed) > 0 || len(applied.GetErrors()) > 0 {
		l.Log.Error("could not take away all access: see the failures; starting the agent again retries",
			"errors", applied.GetErrors(), "failed_assignments", failed)
	} else {
		l.Log.Warn("took away the access of every account this agent manages")
	}
	return cause
}

// save writes the desired state to StateFile when it has changed. A failure
// is logged when it starts and reported in heartbeats until a save works.
func (l *loop) save(now time.Time) {
	if l.saved != nil && proto.Equal(l.saved, l.desired) {
		return
	}
	data, err := encodeState(l.Identity.NodeID(), l.desired, now)
	if err == nil {
		err = writeState(l.Identity.Dir(), data)
	}
	if err != nil {
		if l.saveErr == "" {
			l.Log.Warn("could not save the desired state; a restart while the control plane is unreachable would not apply it",
				"error", err)
		}
		l.saveErr = "could not save the desired state: " + err.Error()
		return
	}
	if l.saveErr != "" {
		l.Log.Info("saved the desired state again")
	}
	l.saveErr, l.saved = "", l.desired
}

// until is d, shortened so that the loop wakes when the next assignment in
// force ends.
func (l *loop) until(d time.Duration, now time.Time) time.Duration {
	if next := nextExpiry(l.desired.GetAssignments(), now); !next.IsZero() && next.Sub(now) < d {
		return next.Sub(now)
	}
	return d
}

// withProblems is applied with problems appended to its errors, without
// changing applied; nil when there is nothing to report.
func withProblems(applied *agentv1.AppliedState, problems []string) *agentv1.AppliedState {
	if len(problems) == 0 {
		return applied
	}
	out := &agentv1.AppliedState{}
	if applied != nil {
		out = proto.Clone(applied).(*agentv1.AppliedState)
	}
	out.Errors = append(slices.Clip(out.Errors), problems...)
	return out
}

// jitter is d ±10 %, so that nodes started together drift apart.
func jitter(d time.Duration, r float64) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*r))
}

// backoff is the wait after the n-th failure in a row: BackoffBase doubled
// per failure up to BackoffMax, less up to 20 % at random, so that it never
// passes the cap and nodes that lost the control plane together do not
// return together.
func backoff(n int, r float64) time.Duration {
	d := BackoffMax
	if n <= 16 { // 5 s << 16 is far past the cap; stop before it overflows
		d = min(BackoffBase<<max(n-1, 0), BackoffMax)
	}
	return time.Duration(float64(d) * (0.8 + 0.2*r))
}
