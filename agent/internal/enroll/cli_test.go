package enroll

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/identity/identitytest"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func command(args []string, vars map[string]string) (int, string, string) {
	return commandWithStdin(args, vars, "")
}

func commandWithStdin(args []string, vars map[string]string, stdin string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := Command(context.Background(), args, env(vars), strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCommandTakesTheTokenFromStdinAFileOrTheEnvironment(t *testing.T) {
	const want = "the-one-time-token-aaaaaaaaaaaaaaaaaaaaaaaa"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(want+"\r\n# the rest is not read as the token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// At the bound: a file of exactly MaxTokenFileBytes is read.
	fullFile := filepath.Join(t.TempDir(), "full")
	full := want + "\n" + strings.Repeat("#", MaxTokenFileBytes-len(want)-1)
	if err := os.WriteFile(fullFile, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		stdin string
	}{
		{"standard input", []string{"--token-file", "-"}, nil, "  " + want + "\n"},
		{"a file", []string{"--token-file", tokenFile}, nil, ""},
		{"a file of the largest size read", []string{"--token-file", fullFile}, nil, ""},
		{"the environment", nil, map[string]string{TokenEnv: want}, ""},
		{"--token-file with the variable set but empty", []string{"--token-file", "-"}, map[string]string{TokenEnv: " "}, want},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := identitytest.NewCA(t, caName)
			srv := identitytest.NewServer(t, ca, identitytest.Config{})
			srv.AddToken(want, nodeID)
			dir := filepath.Join(t.TempDir(), "gpulab")
			args := append([]string{"--server", srv.Addr, "--ca-sha256", ca.Fingerprint(), "--dir", dir}, tt.args...)
			code, stdout, stderr := commandWithStdin(args, tt.env, tt.stdin)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if got := srv.SeenTokens(); !slices.Equal(got, []string{want}) {
				t.Errorf("tokens sent = %q, want %q", got, want)
			}
			want := "enrolled as node " + nodeID + "; identity stored in " + dir + "; heartbeats go to localhost:50052\n"
			if stdout != want {
				t.Errorf("stdout = %q, want %q", stdout, want)
			}
		})
	}
}

func TestCommandLineErrorsExit2BeforeAnythingHappens(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no server", []string{"--ca-sha256", fp}, map[string]string{TokenEnv: token}, "--server is required"},
		{"no fingerprint", []string{"--server", "h"}, map[string]string{TokenEnv: token}, "--ca-sha256 is required"},
		{"bad fingerprint", []string{"--server", "h", "--ca-sha256", fp[:60]}, map[string]string{TokenEnv: token}, "is not a SHA-256 fingerprint"},
		{"no token", []string{"--server", "h", "--ca-sha256", fp}, nil, "no enrollment token: give it with --token-file FILE, --token-file - (standard input) or GPULAB_ENROLL_TOKEN"},
		{"empty token", []string{"--server", "h", "--ca-sha256", fp}, map[string]string{TokenEnv: " "}, "no enrollment token"},
		// A token in argv is readable by every user of the node: refused
		// however it is written, and never echoed.
		{"token on the command line", []string{"--server", "h", "--ca-sha256", fp, "--token", "secret-in-argv"}, nil, "--token is refused: every user of this node can read a command line (ps)"},
		{"token on the command line with =", []string{"--server", "h", "--ca-sha256", fp, "-token=secret-in-argv"}, map[string]string{TokenEnv: token}, "--token is refused"},
		{"token given twice", []string{"--server", "h", "--ca-sha256", fp, "--token-file", "-"}, map[string]string{TokenEnv: token}, "the token is given twice, by --token-file and by GPULAB_ENROLL_TOKEN"},
		{"token file missing", []string{"--server", "h", "--ca-sha256", fp, "--token-file", "/nonexistent/token"}, nil, "--token-file: read the token: open /nonexistent/token: no such file or directory"},
		{"token file empty", []string{"--server", "h", "--ca-sha256", fp, "--token-file", "-"}, nil, "--token-file: the first line of standard input is empty"},
		{"unknown flag", []string{"--url", "https://x"}, nil, "flag provided but not defined: -url"},
		{"positional argument", []string{"--server", "h", "--ca-sha256", fp, "extra"}, map[string]string{TokenEnv: token}, `unexpected arguments ["extra"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := command(tt.args, tt.env)
			if strings.Contains(stderr, "secret-in-argv") {
				t.Errorf("the token is echoed: %q", stderr)
			}
			if code != 2 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
			}
			if !strings.HasPrefix(stderr, "gpulab-agent enroll: ") || !strings.Contains(stderr, tt.want) ||
				!strings.HasSuffix(stderr, Usage) {
				t.Errorf("stderr = %q, want %q and the usage", stderr, tt.want)
			}
		})
	}
}

func TestCommandFailuresExit1WithTheReason(t *testing.T) {
	ca := identitytest.NewCA(t, caName)
	srv := identitytest.NewServer(t, ca, identitytest.Config{})
	dir := filepath.Join(t.TempDir(), "gpulab")
	code, stdout, stderr := command(
		[]string{"--server", srv.Addr, "--ca-sha256", ca.Fingerprint(), "--dir", dir},
		map[string]string{TokenEnv: "expired-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
	)
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing", code, stdout)
	}
	for _, want := range []string{"gpulab-agent enroll: ", "UNAUTHENTICATED", "ask the admin for a new one"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr = %q, want it to contain %q", stderr, want)
		}
	}
	if strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr is not one line: %q", stderr)
	}
}

func TestATokenFileOneByteOverTheBoundIsRefusedAndNothingIsSent(t *testing.T) {
	ca := identitytest.NewCA(t, caName)
	srv := identitytest.NewServer(t, ca, identitytest.Config{})
	srv.AddToken(token, nodeID)
	dir := filepath.Join(t.TempDir(), "gpulab")
	stdin := token + "\n" + strings.Repeat("#", MaxTokenFileBytes-len(token))
	code, stdout, stderr := commandWithStdin(
		[]string{"--server", srv.Addr, "--ca-sha256", ca.Fingerprint(), "--dir", dir, "--token-file", "-"}, nil, stdin)
	if code != 2 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
	if want := "--token-file: standard input holds more than 4096 bytes"; !strings.Contains(stderr, want) {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	if got := srv.SeenTokens(); len(got) != 0 {
		t.Errorf("tokens sent = %q, want none", got)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s was made (%v): nothing may change", dir, err)
	}
}
