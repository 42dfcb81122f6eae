package hostexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"time"
)

// ErrNotFound means the program is not installed (not on PATH, or the given
// path does not exist).
var ErrNotFound = errors.New("program not found")

// Runner runs one OS command to completion.
type Runner interface {
	// Run runs name with args, never through a shell, and returns what the
	// command wrote to stdout and stderr.
	Run(ctx context.Context, name string, args ...string) (stdout, stderr []byte, err error)
}

// waitDelay bounds how long Run waits for the output pipes to close after the
// command exits or is killed: a grandchild that inherited them (a daemon
// started by the command) would otherwise block Run forever. Five seconds is
// ample for pipes to drain and short against the 30 s heartbeat interval.
const waitDelay = 5 * time.Second

// Exec is the Runner that really executes commands on the host.
type Exec struct{}

var _ Runner = Exec{}

// Run implements Runner with os/exec. The command inherits the agent's
// environment with LC_ALL=C, because callers parse the output of tools that
// localise their messages and number formats.
func (Exec) Run(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = waitDelay

	err := cmd.Run()
	switch {
	case err == nil:
		return stdout.Bytes(), stderr.Bytes(), nil
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		// ErrNotFound: a bare name not on PATH. ErrNotExist: a path such as
		// /usr/bin/nvidia-smi that exec could not start. A command that ran
		// and failed is an *exec.ExitError, which matches neither.
		return nil, nil, fmt.Errorf("run %s: %w: %w", name, ErrNotFound, err)
	case ctx.Err() != nil:
		// Report the cancellation rather than the "signal: killed" it caused.
		return stdout.Bytes(), stderr.Bytes(), fmt.Errorf("run %s: %w (%v)", name, ctx.Err(), err)
	default:
		return stdout.Bytes(), stderr.Bytes(), fmt.Errorf("run %s: %w", name, err)
	}
}
