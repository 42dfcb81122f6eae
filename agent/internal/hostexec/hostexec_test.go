package hostexec

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"testing"
	"time"
)

// These tests run programs found on every Linux host (printf, ls, sleep), so
// they exercise the real exec path without root.

func TestExecPassesArgumentsLiterallyWithoutAShell(t *testing.T) {
	needProgram(t, "printf")
	stdout, _, err := Exec{}.Run(context.Background(), "printf", "%s|", "a b", "$(id)", "*", "x;y")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got, want := string(stdout), "a b|$(id)|*|x;y|"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func TestExecReturnsStderrAndErrorOnNonZeroExit(t *testing.T) {
	needProgram(t, "ls")
	_, stderr, err := Exec{}.Run(context.Background(), "ls", "/gpulab-no-such-path")
	if err == nil {
		t.Fatal("Run succeeded, want an error for a non-zero exit")
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() == 0 {
		t.Errorf("error = %v, want it to wrap a non-zero *exec.ExitError", err)
	}
	if errors.Is(err, ErrNotFound) {
		t.Errorf("error = %v matches ErrNotFound, but the program exists", err)
	}
	if len(stderr) == 0 {
		t.Error("stderr is empty, want ls's complaint")
	}
}

func TestExecMissingProgramMatchesErrNotFound(t *testing.T) {
	for _, name := range []string{"gpulab-no-such-program", "/gpulab/no/such/program"} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Exec{}.Run(context.Background(), name)
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("error = %v, want one matching ErrNotFound", err)
			}
		})
	}
}

func TestExecStopsTheCommandWhenTheContextEnds(t *testing.T) {
	needProgram(t, "sleep")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()

	start := time.Now()
	_, _, err := Exec{}.Run(ctx, "sleep", "30")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want one matching context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Run returned after %v, want it to stop the command promptly", elapsed)
	}
}

func needProgram(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed: %v", name, err)
	}
}

func TestTheZeroHostIsTheRealOneWithTheBareCommandNames(t *testing.T) {
	h := Host{}.WithDefaults()
	if h.Root != "/" || h.Runner != (Exec{}) {
		t.Errorf("zero Host = root %q, runner %T; want /, Exec", h.Root, h.Runner)
	}
	c := h.Commands
	if got := []string{c.Sshd, c.Systemctl, c.Useradd, c.Usermod, c.Userdel, c.Pkill, c.NvidiaSMI, c.Pct}; !slices.Equal(got,
		[]string{"sshd", "systemctl", "useradd", "usermod", "userdel", "pkill", "nvidia-smi", "pct"}) {
		t.Errorf("commands = %q", got)
	}
	set := Host{Root: "/tmp/x", Commands: Commands{Sshd: "/opt/sshd"}}.WithDefaults()
	if set.Root != "/tmp/x" || set.Commands.Sshd != "/opt/sshd" || set.Path("/etc/passwd") != "/tmp/x/etc/passwd" {
		t.Errorf("a Host's own settings were not kept: %+v", set)
	}
}
