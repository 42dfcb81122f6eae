package runloop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/gpulab/gpulab/agent/internal/enroll"
	"github.com/gpulab/gpulab/agent/internal/identity"
)

// DefaultDir is the identity directory unless --dir says otherwise: the
// same as enroll's, and what install-agent.sh enrolls into.
const DefaultDir = enroll.DefaultDir

// Exit statuses. ExitReenroll is EX_CONFIG of sysexits.h: restarting cannot
// help, the node needs an operator. The systemd unit that install-agent.sh
// writes lists it in RestartPreventExitStatus= so that systemd does not
// restart a revoked node every few seconds.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	ExitReenroll = 78
)

// Usage is the run command's help.
const Usage = `usage: gpulab-agent run [--dir DIR]

Runs the agent as a service (systemd starts it): heartbeats to the control
plane with the identity in DIR, applies the assignments it receives, and keeps
applying the last ones (less those that have ended) while the control plane
cannot be reached. The certificate is renewed from 2/3 of its lifetime on.

  --dir DIR   the identity directory, as given to enroll (default ` + DefaultDir + `)

Settings from the environment (the unit reads ` + DefaultDir + `/agent.env):
  GPULAB_ON_REVOKE         lock (default: an account whose last assignment
                           ended is locked, its keys emptied, its home kept)
                           or remove (deleted with its home)
  GPULAB_STATE_DIR         the mig and container modes' state
                           (default /var/lib/gpulab)
  GPULAB_CONTAINER_SOCKET  the container engine's API socket (default
                           /var/run/docker.sock, else /run/podman/podman.sock)
  GPULAB_CONTAINER_IMAGE   the container mode's image
  GPULAB_PROXMOX_CONFIG    a Proxmox VE API configuration; when the file
                           exists (default ` + DefaultDir + `/proxmox.json) the
                           container mode makes an LXC per assignment

Exit status: 0 stopped (SIGTERM or SIGINT), 1 failed, 2 bad command line,
78 the node must be enrolled again (its certificate was revoked, has expired
or is unknown, or DIR holds no usable identity): ask the admin for a new
enrollment token and run the install command again; systemd does not restart
the agent after this status. When the control plane refused the node, every
account the agent manages was locked or removed (GPULAB_ON_REVOKE) first;
they come back with the next enrollment.
`

// Deps are what Command runs with besides its command line.
type Deps struct {
	Version    string
	Hardware   HardwareCollector
	Reconciler Reconciler
	// LookupEnv reads GPULAB_URL (from agent.env) for the re-enroll message.
	LookupEnv func(string) (string, bool)
	Clock     Clock // nil: RealClock
	// Log is the agent's log; nil: NewLogger(stderr).
	Log *slog.Logger
}

// Command runs `gpulab-agent run` with args (after "run") until SIGTERM or
// SIGINT or until ctx is done, and returns the exit status.
func Command(ctx context.Context, args []string, deps Deps, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", DefaultDir, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, Usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "gpulab-agent run: %v\n\n%s", err, Usage)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gpulab-agent run: unexpected arguments %q\n\n%s", fs.Args(), Usage)
		return exitUsage
	}
	if *dir == "" {
		fmt.Fprintf(stderr, "gpulab-agent run: --dir must not be empty\n\n%s", Usage)
		return exitUsage
	}
	log := deps.Log
	if log == nil {
		log = NewLogger(stderr)
	}
	lookupEnv := deps.LookupEnv
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}

	id, err := identity.Load(*dir)
	if err != nil {
		log.Error("no usable identity: "+err.Error()+"; "+reenrollAdvice(lookupEnv, ""), "exit_status", ExitReenroll)
		return ExitReenroll
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = Run(ctx, Config{
		Identity:   id,
		Version:    deps.Version,
		Hardware:   deps.Hardware,
		Reconciler: deps.Reconciler,
		Clock:      deps.Clock,
		Log:        log,
	})
	switch {
	case err == nil:
		log.Info("agent stopped")
		return exitOK
	case errors.Is(err, identity.ErrReenrollNeeded):
		fp := sha256.Sum256(id.CA().Raw)
		log.Error("RE-ENROLL NEEDED: the control plane no longer accepts this node ("+err.Error()+"); "+
			reenrollAdvice(lookupEnv, hex.EncodeToString(fp[:])), "exit_status", ExitReenroll)
		return ExitReenroll
	default:
		log.Error("agent failed", "error", err)
		return exitFailure
	}
}

// reenrollAdvice says what an operator does about a node that must enroll
// again, with the install command filled in as far as the node knows it.
func reenrollAdvice(lookupEnv func(string) (string, bool), fingerprint string) string {
	url, ok := lookupEnv("GPULAB_URL")
	if !ok || url == "" {
		url = "<control plane URL>"
	}
	if fingerprint == "" {
		fingerprint, ok = lookupEnv("GPULAB_CA_FINGERPRINT")
		if !ok || fingerprint == "" {
			fingerprint = "<CA fingerprint>"
		}
	}
	return "ask the admin for a new enrollment token and run the install command the control plane shows with it, adding --force: " +
		"{ curl -fsSL " + url + "/install-agent.sh && printf '%s\\n' '<NEW TOKEN>'; } | sudo bash -s -- --url " + url +
		" --ca-fingerprint " + fingerprint + " --token-file - --force" +
		" (systemd does not restart the agent until then)"
}

// NewLogger is the agent's log: to w (the journal, under systemd) without
// timestamps, which the journal adds.
func NewLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}
