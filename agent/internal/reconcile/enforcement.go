package reconcile

import (
	"context"
	"errors"
	"fmt"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/jump"
)

// modeNames are the registry names of the enforcement modes, the values of
// the REST Environment.enforcement_mode.
var modeNames = map[agentv1.EnforcementMode]string{
	agentv1.EnforcementMode_ENFORCEMENT_MODE_SOFT:      "soft",
	agentv1.EnforcementMode_ENFORCEMENT_MODE_CGROUP:    "cgroup",
	agentv1.EnforcementMode_ENFORCEMENT_MODE_MIG:       "mig",
	agentv1.EnforcementMode_ENFORCEMENT_MODE_CONTAINER: "container",
}

// enforcerFor returns the Enforcer of mode. A mode this agent does not know
// is refused here, before the host is touched, so that no account is created
// for an assignment that would get none of the limits it was promised.
func (r *Reconciler) enforcerFor(mode agentv1.EnforcementMode) (string, enforce.Enforcer, error) {
	if mode == agentv1.EnforcementMode_ENFORCEMENT_MODE_UNSPECIFIED {
		return "", nil, errors.New("enforcement mode is unspecified; the agent does not guess one")
	}
	if mode == agentv1.EnforcementMode_ENFORCEMENT_MODE_JUMP {
		// Not in the registry: the mode has no host state to list or
		// remove, and no node but the jump host is sent it.
		return jump.Mode, jump.Enforcer{}, nil
	}
	name, ok := modeNames[mode]
	if !ok {
		return "", nil, fmt.Errorf("enforcement mode %d is unknown to this agent", mode)
	}
	enf, err := r.cfg.Enforcers.Get(name)
	if err != nil {
		return "", nil, fmt.Errorf("enforcement mode %s is not available on this agent: %w", name, err)
	}
	return name, enf, nil
}

// removeEnforcement removes, from every enforcer, what it applies on the host
// that keep does not list for its mode. It returns the failures by assignment
// id; a failure to list is a node error.
func (r *Reconciler) removeEnforcement(ctx context.Context, keep map[string]map[string]bool, state *agentv1.AppliedState) map[string]error {
	errs := make(map[string]error)
	for _, mode := range r.cfg.Enforcers.Names() {
		enf, err := r.cfg.Enforcers.Get(mode)
		if err != nil {
			continue // unregistered between Names and Get: nothing to remove
		}
		ids, err := enf.Applied(ctx)
		if err != nil {
			state.Errors = append(state.Errors, sentence(fmt.Errorf("list what %s enforcement applies: %w", mode, err)))
			continue
		}
		for _, id := range ids {
			if keep[mode][id] {
				continue
			}
			if err := enf.Remove(ctx, id); err != nil {
				errs[id] = fmt.Errorf("remove %s enforcement: %w", mode, err)
			}
		}
	}
	return errs
}

func nonNil(errs ...error) []error {
	var out []error
	for _, e := range errs {
		if e != nil {
			out = append(out, e)
		}
	}
	return out
}
