package reconcile

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/cgroup"
	"github.com/gpulab/gpulab/agent/internal/enforce/container"
	"github.com/gpulab/gpulab/agent/internal/enforce/jump"
	"github.com/gpulab/gpulab/agent/internal/enforce/mig"
	"github.com/gpulab/gpulab/agent/internal/enforce/soft"
)

// Options configure the enforcers of DefaultEnforcers.
type Options struct {
	// Soft holds the host root and the commands every mode's sshd drop-in
	// uses (Root "" is "/").
	Soft soft.Config
	// StateDir is where mig and container keep their state; Root's
	// var/lib/gpulab when empty.
	StateDir string
	// ContainerSocket and ContainerImage configure the container mode (see
	// package container for the defaults).
	ContainerSocket, ContainerImage string
	// Container, when set, enforces the container mode instead of the
	// engine-backed one: on a Proxmox host, the assignment's LXC (package
	// proxmox).
	Container enforce.Enforcer
}

// DefaultEnforcers is the registry of this build: every mode of the
// Environment's enforcement_mode, each enforced by its package.
func DefaultEnforcers(o Options) *enforce.Registry {
	root := o.Soft.Root
	if root == "" {
		root = "/"
	}
	o.Soft.Root = root
	if o.StateDir == "" {
		o.StateDir = filepath.Join(root, "var/lib/gpulab")
	}
	if o.ContainerSocket == "" && root != "/" {
		// A host under another root (the tests') never reaches this
		// machine's engine.
		o.ContainerSocket = filepath.Join(root, "var/run/docker.sock")
	}
	ctr := o.Container
	if ctr == nil {
		ctr = container.New(container.Config{
			Socket: o.ContainerSocket, Image: o.ContainerImage,
			StateDir: filepath.Join(o.StateDir, "containers"), Soft: o.Soft,
		})
	}
	reg := enforce.NewRegistry()
	// Register cannot fail here: the names are distinct and non-empty.
	_ = reg.Register(soft.ModeSoft, soft.New(o.Soft))
	_ = reg.Register(cgroup.Mode, cgroup.New(cgroup.Config{Root: root, Runner: o.Soft.Runner, Sshd: o.Soft.Sshd, Systemctl: o.Soft.Systemctl}))
	_ = reg.Register(mig.Mode, mig.New(mig.Config{Runner: o.Soft.Runner, StateDir: o.StateDir, Soft: o.Soft}))
	_ = reg.Register(container.Mode, ctr)
	return reg
}

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
