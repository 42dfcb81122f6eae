package enroll

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// TokenEnv is the environment variable the token is read from when --token
// is not given. It is the preferred way: other users can read a process's
// arguments (ps), not its environment.
const TokenEnv = "GPULAB_ENROLL_TOKEN"

// DefaultDir is where the identity is stored unless --dir says otherwise.
const DefaultDir = "/etc/gpulab"

// timeout bounds the whole enrollment: a handshake and one call, which take
// seconds; a minute leaves room for a slow link without hanging an install.
const timeout = time.Minute

// Exit statuses, as for the other commands: 2 for a command line that
// cannot be understood (nothing was done), 1 for any other failure.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Usage is the enroll command's help.
const Usage = `usage: gpulab-agent enroll --server HOST[:PORT] --ca-sha256 FINGERPRINT [--token TOKEN] [--dir DIR] [--force]

Enrolls this node with the control plane: pins its CA by FINGERPRINT, spends
the one-time enrollment token on a client certificate for a new EC P-384 key,
and stores node.key, node.pem, ca.pem and agent.json in DIR.

  --server HOST[:PORT]     the Enrollment endpoint (default port ` + DefaultPort + `)
  --ca-sha256 FINGERPRINT  SHA-256 of the CA certificate (64 hex digits, colons allowed)
  --token TOKEN            the enrollment token; better in the environment
                           variable ` + TokenEnv + ` (not visible in ps)
  --dir DIR                the identity directory (default ` + DefaultDir + `)
  --force                  replace an identity already in DIR

Exit status: 0 enrolled, 1 failed (nothing was changed), 2 bad command line.
`

// Command runs `gpulab-agent enroll` with args (after "enroll"), reading the
// token from lookupEnv when --token is absent, and returns the exit status.
func Command(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server := fs.String("server", "", "")
	fingerprint := fs.String("ca-sha256", "", "")
	token := fs.String("token", "", "")
	dir := fs.String("dir", DefaultDir, "")
	force := fs.Bool("force", false, "")
	usageError := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "gpulab-agent enroll: "+format+"\n\n%s", append(a, Usage)...)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, Usage)
			return exitOK
		}
		return usageError("%v", err)
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	if *server == "" {
		return usageError("--server is required")
	}
	if *fingerprint == "" {
		return usageError("--ca-sha256 is required")
	}
	fp, err := ParseFingerprint(*fingerprint)
	if err != nil {
		return usageError("--ca-sha256: %v", err)
	}
	if *token == "" {
		*token, _ = lookupEnv(TokenEnv)
	}
	*token = strings.TrimSpace(*token)
	if *token == "" {
		return usageError("no enrollment token: set %s (preferred) or pass --token", TokenEnv)
	}
	if *dir == "" {
		return usageError("--dir must not be empty")
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := Run(ctx, Config{Server: *server, Fingerprint: fp, Token: *token, Dir: *dir, Force: *force})
	if err != nil {
		fmt.Fprintf(stderr, "gpulab-agent enroll: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "enrolled as node %s; identity stored in %s; heartbeats go to %s\n",
		res.NodeID, res.Dir, res.HeartbeatEndpoint)
	return exitOK
}
