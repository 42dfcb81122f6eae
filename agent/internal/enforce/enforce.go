package enforce

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Assignment is what an Enforcer needs to know about one assignment. Expiry
// is not here: the reconciler removes an expired assignment like any other
// that is no longer desired.
type Assignment struct {
	// ID is the assignment's id (a UUID), stable for its whole life.
	ID string
	// LinuxUsername is the account the user logs in as.
	LinuxUsername string
	// GPUs are the GPUs the assignment holds on this node.
	GPUs []GPU
	// CPUs is the number of logical CPUs granted; 0 means no limit.
	CPUs int
	// RAMMB is the memory granted in MiB; 0 means no limit.
	RAMMB int64
	// SSHKeys are the user's public keys, one authorized_keys line each,
	// already validated by the reconciler. The modes that give the user a
	// login of their own (container, Proxmox) install them there.
	SSHKeys []string
	// MIGProfile is the GPU-instance profile the mig mode creates on each
	// assigned GPU ("1g.10gb"); empty means the largest one, the whole GPU.
	MIGProfile string
}

// GPU names one GPU held by an assignment. UUID is authoritative; Index is
// nvidia-smi's index when the assignment was made.
type GPU struct {
	Index int
	UUID  string
}

// CompareGPUs orders GPUs by index, then UUID: the order CUDA numbers the
// devices of CUDA_VISIBLE_DEVICES in, so device 0 is the lowest index.
func CompareGPUs(a, b GPU) int {
	if a.Index != b.Index {
		return cmp.Compare(a.Index, b.Index)
	}
	return strings.Compare(a.UUID, b.UUID)
}

// Enforcer applies one enforcement mode. See the package documentation for
// the idempotency contract every implementation keeps.
type Enforcer interface {
	// Apply makes the node enforce a. Idempotent.
	Apply(ctx context.Context, a Assignment) error
	// Remove undoes Apply for the assignment with this id. Removing one that
	// is not applied succeeds.
	Remove(ctx context.Context, assignmentID string) error
	// Applied lists the ids of the assignments this enforcer currently
	// enforces, as read from the host.
	Applied(ctx context.Context) ([]string, error)
}

// AccessPorter is implemented by the Enforcers whose users log in somewhere
// other than the node's own sshd (the container mode): AccessPort is the
// node-local TCP port, on 127.0.0.1, where the applied assignment with this
// id accepts SSH, or 0 when there is none or it is not known. The reconciler
// asks it after a successful Apply and reports the port to the control
// plane (AppliedAssignment.access_port), which puts it in the user's SSH
// config.
type AccessPorter interface {
	AccessPort(assignmentID string) int
}

// ErrUnknownMode is returned by Registry.Get for a name nothing registered.
var ErrUnknownMode = errors.New("unknown enforcement mode")

// Registry maps enforcement mode names to Enforcers. It is safe for
// concurrent use.
type Registry struct {
	mu        sync.RWMutex
	enforcers map[string]Enforcer
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{enforcers: make(map[string]Enforcer)}
}

// Register makes e the Enforcer for mode name. Registering a name twice is an
// error rather than a silent replacement, because two implementations
// claiming one mode is a wiring bug.
func (r *Registry) Register(name string, e Enforcer) error {
	if name == "" {
		return errors.New("register enforcer: empty mode name")
	}
	if e == nil {
		return fmt.Errorf("register enforcer %q: nil Enforcer", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.enforcers[name]; ok {
		return fmt.Errorf("register enforcer %q: mode already registered", name)
	}
	r.enforcers[name] = e
	return nil
}

// Get returns the Enforcer for mode name, or an error matching
// ErrUnknownMode that lists the modes this build supports.
func (r *Registry) Get(name string) (Enforcer, error) {
	r.mu.RLock()
	e, ok := r.enforcers[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("get enforcer %q: %w (registered: %v)", name, ErrUnknownMode, r.Names())
	}
	return e, nil
}

// Names returns the registered mode names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Sorted(maps.Keys(r.enforcers))
}
