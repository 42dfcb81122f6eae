package runloop

import (
	"context"
	"fmt"

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

// Unenforced is a PLACEHOLDER Reconciler for as long as the real one
// (package reconcile) is not wired in: it changes nothing on the node and
// says so in the applied state, so that neither the control plane nor the
// admin takes an assignment for enforced.
type Unenforced struct{}

// Apply reports every desired assignment as failed, not applied.
func (Unenforced) Apply(_ context.Context, desired []*agentv1.Assignment) *agentv1.AppliedState {
	if len(desired) == 0 {
		return nil
	}
	const why = "this agent build does not enforce assignments yet (no reconciler)"
	state := &agentv1.AppliedState{
		Errors: []string{fmt.Sprintf("%d assignment(s) not applied: %s", len(desired), why)},
	}
	for _, a := range desired {
		state.Assignments = append(state.Assignments, &agentv1.AppliedAssignment{
			AssignmentId: a.GetAssignmentId(),
			State:        agentv1.ApplyState_APPLY_STATE_FAILED,
			Error:        why,
		})
	}
	return state
}
