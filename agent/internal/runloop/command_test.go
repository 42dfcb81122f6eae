package runloop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/identity/identitytest"
)

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{[]string{"--help"}, 0, Usage, ""},
		{[]string{"--bogus"}, 2, "", "gpulab-agent run: flag provided but not defined: -bogus\n\n" + Usage},
		{[]string{"extra"}, 2, "", "gpulab-agent run: unexpected arguments [\"extra\"]\n\n" + Usage},
		{[]string{"--dir", ""}, 2, "", "gpulab-agent run: --dir must not be empty\n\n" + Usage},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Command(t.Context(), tt.args, Deps{}, &stdout, &stderr)
			if code != tt.wantCode || stdout.String() != tt.wantStdout || stderr.String() != tt.wantStderr {
				t.Errorf("Command(%q) = %d, stdout %q, stderr %q; want %d, %q, %q",
					tt.args, code, stdout.String(), stderr.String(), tt.wantCode, tt.wantStdout, tt.wantStderr)
			}
		})
	}
}

func TestCommandWithoutAnIdentityExitsWithTheReenrollStatus(t *testing.T) {
	var stdout, stderr bytes.Buffer
	dir := filepath.Join(t.TempDir(), "nothing-here")
	code := Command(t.Context(), []string{"--dir", dir}, Deps{Hardware: fakeHardware{}, Reconciler: &recReconciler{}}, &stdout, &stderr)
	if code != ExitReenroll {
		t.Fatalf("exit status = %d, want %d; stderr:\n%s", code, ExitReenroll, stderr.String())
	}
	if !strings.Contains(stderr.String(), "no usable identity") || !strings.Contains(stderr.String(), dir) {
		t.Errorf("stderr does not say what is missing:\n%s", stderr.String())
	}
}

func TestCommandExitsWithTheReenrollStatusAndSaysWhatToDo(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab test CA")
	srv := newHBServer(t, ca)
	srv.setReply(func(int, *agentv1.HeartbeatRequest) (*agentv1.HeartbeatResponse, error) {
		return nil, status.Error(codes.Unauthenticated, "the client certificate has been revoked")
	})
	nb, na := freshValidity()
	id := newIdentity(t, ca, srv.Addr, closedAddr(t), nb, na)
	env := map[string]string{"GPULAB_URL": "https://gpulab.example.org"}
	var stdout, stderr bytes.Buffer
	code := Command(t.Context(), []string{"--dir", id.Dir()}, Deps{
		Hardware:   fakeHardware{},
		Reconciler: &recReconciler{},
		Clock:      newFakeClock(time.Now()),
		LookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
	}, &stdout, &stderr)
	if code != ExitReenroll {
		t.Fatalf("exit status = %d, want %d; stderr:\n%s", code, ExitReenroll, stderr.String())
	}
	sum := sha256.Sum256(ca.Cert.Raw)
	var found []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "RE-ENROLL NEEDED") {
			found = append(found, line)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one re-enroll line, got %d:\n%s", len(found), stderr.String())
	}
	for _, want := range []string{
		"the client certificate has been revoked",
		"ask the admin for a new enrollment token",
		// The token on stdin after the script, never on a command line (the
		// log escapes printf's backslash, so the check stops short of it).
		"{ curl -fsSL https://gpulab.example.org/install-agent.sh && printf '%s",
		"n' '<NEW TOKEN>'; } | sudo bash -s -- --url https://gpulab.example.org",
		"--ca-fingerprint " + hex.EncodeToString(sum[:]) + " --token-file - --force",
	} {
		if !strings.Contains(found[0], want) {
			t.Errorf("the re-enroll line lacks %q:\n%s", want, found[0])
		}
	}
}

func TestCommandStopsWithStatusZeroWhenCancelled(t *testing.T) {
	ca := identitytest.NewCA(t, "gpulab test CA")
	srv := newHBServer(t, ca)
	nb, na := freshValidity()
	id := newIdentity(t, ca, srv.Addr, closedAddr(t), nb, na)
	ctx, cancel := context.WithCancel(t.Context())
	clock := newFakeClock(time.Now())
	clock.onSleep = func(int, time.Duration) { cancel() }
	var stdout, stderr bytes.Buffer
	code := Command(ctx, []string{"--dir", id.Dir()}, Deps{Hardware: fakeHardware{}, Reconciler: &recReconciler{}, Clock: clock}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit status = %d, want 0; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "agent stopped") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}
