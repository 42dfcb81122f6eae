package enforce

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotImplemented matches the error of an Unimplemented enforcer.
var ErrNotImplemented = errors.New("not implemented on this agent yet")

// Unimplemented is the Enforcer of a mode this agent knows by name but cannot
// enforce yet. It refuses every assignment instead of pretending: the
// reconciler reports the assignment FAILED with Err's sentence and grants no
// access for it, because access without the promised limits is exactly what
// an admin who chose that mode wanted to prevent.
type Unimplemented struct {
	// Mode is the enforcement mode's name ("cgroup", "mig", "container").
	Mode string
}

var _ Enforcer = Unimplemented{}

// Err is what Apply returns: "enforcement mode X is not implemented on this
// agent yet", matching ErrNotImplemented.
func (u Unimplemented) Err() error {
	return fmt.Errorf("enforcement mode %s is %w", u.Mode, ErrNotImplemented)
}

// Apply refuses a and changes nothing.
func (u Unimplemented) Apply(context.Context, Assignment) error { return u.Err() }

// Remove succeeds: Apply never applied anything to undo.
func (Unimplemented) Remove(context.Context, string) error { return nil }

// Applied is always empty, for the same reason.
func (Unimplemented) Applied(context.Context) ([]string, error) { return nil, nil }
