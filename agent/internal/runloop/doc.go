// Package runloop is `gpulab-agent run`, the agent as a systemd service: it
// loads the node's identity, heartbeats to the control plane over mutual TLS,
// hands each reply's assignments to a Reconciler and reports what it did in
// the next heartbeat.
//
// Contract:
//   - Every cycle: renew the certificate if it is in its renewal window (2/3
//     of its lifetime), collect the hardware, send Heartbeat(agent_version,
//     hardware, applied_state), apply the reply, wait. The wait is the
//     server's heartbeat_interval_s (DefaultInterval until a reply names one)
//     with ±10 % jitter, never past the next expires_at of an assignment in
//     force, so that access ends on time.
//   - The reconciler runs on a goroutine of its own. A cycle waits for the
//     reconcile it started for up to Config.ReconcileGrace (5 s), so a
//     usual reconcile reads as inline; a longer one (an image pull, a
//     Proxmox guest's creation) goes on while heartbeats continue, reporting
//     the last finished outcome, and the desired states that arrive
//     meanwhile coalesce into the latest, applied next.
//   - The last desired state is kept in StateFile in the identity directory,
//     written atomically. When the control plane cannot be reached (also at
//     start) the loop backs off exponentially with jitter (BackoffBase up to
//     BackoffMax) and keeps applying that state, less the assignments whose
//     expires_at has passed by the node's clock. With no state at all it
//     applies nothing: an empty desired state would remove every user.
//   - The state of the connection (reachable, unreachable), of renewal and of
//     the reconciler's errors is logged when it changes, not per attempt.
//   - When the control plane no longer accepts the node (a heartbeat answered
//     UNAUTHENTICATED: deleted, or its certificate revoked; or
//     identity.ErrReenrollNeeded from renewal: revoked, expired) Run takes
//     away every access the agent manages before it returns: it removes the
//     saved state, applies an empty desired state (the reconciler locks or
//     removes every managed account, as GPULAB_ON_REVOKE says, and undoes
//     every enforcement, also those of an earlier run), waits for that
//     reconcile, and returns an error matching identity.ErrReenrollNeeded;
//     Command then logs what to do and exits with ExitReenroll, which the
//     systemd unit lists in RestartPreventExitStatus=. A node the control
//     plane refuses can no longer learn of any revocation, so no access may
//     outlive its identity (issue 12).
//   - When ctx is cancelled (SIGTERM, SIGINT) the cycle in progress and the
//     reconcile in progress (and one pending) are finished, not cut short,
//     and Run returns nil.
package runloop
