package runloop

import (
	"context"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
)

// Reconciler converges the node to the desired assignments.
//
// Contract:
//   - desired is complete: an assignment absent from it must be removed from
//     the node (account access, keys, enforcement), one present applied or
//     kept as it is. It never holds an assignment whose expires_at has passed
//     by the node's clock: the loop drops those first.
//   - Apply is idempotent: the loop calls it every cycle, also with a desired
//     state it has already applied, and that changes nothing.
//   - Apply never fails as a whole: the outcome of each assignment and the
//     problems not tied to one are in the AppliedState it returns, which the
//     next heartbeat reports unchanged (nil: nothing to report).
//   - The loop calls Apply from one goroutine, one call at a time, with a
//     context that is not cancelled when the agent is asked to stop: a
//     reconcile in progress is finished.
type Reconciler interface {
	Apply(ctx context.Context, desired []*agentv1.Assignment) *agentv1.AppliedState
}
