package enroll

import (
	"bytes"
	"context"
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
	var stdout, stderr bytes.Buffer
	code := Command(context.Background(), args, env(vars), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCommandTakesTheTokenFromTheEnvironmentOrTheFlag(t *testing.T) {
	const envToken, flagToken = "token-from-the-environment-aaaaaaaaaaaaaaa", "token-from-the-flag-aaaaaaaaaaaaaaaaaaaaaa"
	tests := []struct {
		name string
		flag bool
		env  bool
		want string
	}{
		{"environment", false, true, envToken},
		{"flag", true, false, flagToken},
		{"the flag wins over the environment", true, true, flagToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := identitytest.NewCA(t, caName)
			srv := identitytest.NewServer(t, ca, identitytest.Config{})
			srv.AddToken(tt.want, nodeID)
			dir := filepath.Join(t.TempDir(), "gpulab")
			args := []string{"--server", srv.Addr, "--ca-sha256", ca.Fingerprint(), "--dir", dir}
			if tt.flag {
				args = append(args, "--token", flagToken)
			}
			vars := map[string]string{}
			if tt.env {
				vars[TokenEnv] = envToken
			}
			code, stdout, stderr := command(args, vars)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if got := srv.SeenTokens(); !slices.Equal(got, []string{tt.want}) {
				t.Errorf("tokens sent = %q, want %q", got, tt.want)
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
		{"no token", []string{"--server", "h", "--ca-sha256", fp}, nil, "no enrollment token: set GPULAB_ENROLL_TOKEN"},
		{"empty token", []string{"--server", "h", "--ca-sha256", fp}, map[string]string{TokenEnv: " "}, "no enrollment token"},
		{"unknown flag", []string{"--url", "https://x"}, nil, "flag provided but not defined: -url"},
		{"positional argument", []string{"--server", "h", "--ca-sha256", fp, "extra"}, map[string]string{TokenEnv: token}, `unexpected arguments ["extra"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := command(tt.args, tt.env)
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
