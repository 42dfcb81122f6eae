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

// TokenEnv is the environment variable the token may be read from, instead
// of --token-file. Other users can read a process's arguments (ps,
// /proc/PID/cmdline), never its environment or its standard input.
const TokenEnv = "GPULAB_ENROLL_TOKEN"

// MaxTokenFileBytes bounds what --token-file reads: the token is its first
// line, 43 characters as pki makes them (pki refuses any over 256), so 4 KiB
// is room for a trailing newline, comments or a CRLF file, and no more.
const MaxTokenFileBytes = 4096

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
const Usage = `usage: gpulab-agent enroll --server HOST[:PORT] --ca-sha256 FINGERPRINT [--token-file FILE|-] [--dir DIR] [--force]

Enrolls this node with the control plane: pins its CA by FINGERPRINT, spends
the one-time enrollment token on a client certificate for a new EC P-384 key,
and stores node.key, node.pem, ca.pem and agent.json in DIR.

  --server HOST[:PORT]     the Enrollment endpoint (default port ` + DefaultPort + `)
  --ca-sha256 FINGERPRINT  SHA-256 of the CA certificate (64 hex digits, colons allowed)
  --token-file FILE        read the enrollment token from FILE's first line;
                           - reads it from standard input. Without it, the
                           token is taken from the environment variable
                           ` + TokenEnv + `. Never on the command line:
                           every user of the node can read that (ps).
  --dir DIR                the identity directory (default ` + DefaultDir + `)
  --force                  replace an identity already in DIR

Exit status: 0 enrolled, 1 failed (nothing was changed), 2 bad command line.
`

// Command runs `gpulab-agent enroll` with args (after "enroll"), reading the
// token from --token-file (stdin for "-") or else from lookupEnv, and
// returns the exit status.
func Command(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	server := fs.String("server", "", "")
	fingerprint := fs.String("ca-sha256", "", "")
	tokenFile := fs.String("token-file", "", "")
	// Defined only to refuse it with the reason, rather than as unknown.
	_ = fs.String("token", "", "")
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
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["token"] {
		return usageError("--token is refused: every user of this node can read a command line (ps); " +
			"give the token with --token-file FILE, --token-file - (standard input) or " + TokenEnv)
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
	envToken, _ := lookupEnv(TokenEnv)
	envToken = strings.TrimSpace(envToken)
	var token string
	switch {
	case given["token-file"] && envToken != "":
		return usageError("the token is given twice, by --token-file and by %s: give it one way", TokenEnv)
	case given["token-file"]:
		if token, err = readTokenFile(*tokenFile, stdin); err != nil {
			return usageError("--token-file: %v", err)
		}
	default:
		token = envToken
	}
	if token == "" {
		return usageError("no enrollment token: give it with --token-file FILE, --token-file - (standard input) or %s", TokenEnv)
	}
	if *dir == "" {
		return usageError("--dir must not be empty")
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := Run(ctx, Config{Server: *server, Fingerprint: fp, Token: token, Dir: *dir, Force: *force})
	if err != nil {
		fmt.Fprintf(stderr, "gpulab-agent enroll: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "enrolled as node %s; identity stored in %s; heartbeats go to %s\n",
		res.NodeID, res.Dir, res.HeartbeatEndpoint)
	return exitOK
}

// readTokenFile is the first line of path ("-": stdin), trimmed; at most
// MaxTokenFileBytes are read, and a longer input is refused.
func readTokenFile(path string, stdin io.Reader) (string, error) {
	var r io.Reader = stdin
	name := "standard input"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("read the token: %w", err)
		}
		defer f.Close()
		r, name = f, path
	}
	if r == nil {
		return "", fmt.Errorf("read the token from %s: nothing to read", name)
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxTokenFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read the token from %s: %w", name, err)
	}
	if len(data) > MaxTokenFileBytes {
		return "", fmt.Errorf("%s holds more than %d bytes; a token is one line of about 43 characters", name, MaxTokenFileBytes)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	token := strings.TrimSpace(line)
	if token == "" {
		return "", fmt.Errorf("the first line of %s is empty", name)
	}
	return token, nil
}
