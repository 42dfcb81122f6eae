package proxmox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/proxmox/pvetest"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// sha is the digest line's value for an authorized_keys content, computed
// here independently of keysDigest.
func sha(content string) string {
	sum := sha256.Sum256([]byte(content))
	return hex.EncodeToString(sum[:])
}

// authorizedKeysOf returns CT 100's root authorized_keys, failing without one.
func authorizedKeysOf(t *testing.T, s *pvetest.Server) pvetest.File {
	t.Helper()
	f, ok := s.CTFile(100, "/root/.ssh/authorized_keys")
	if !ok {
		t.Fatal("CT 100 has no /root/.ssh/authorized_keys")
	}
	return f
}

func descriptionOf(t *testing.T, s *pvetest.Server) string {
	t.Helper()
	ct, ok := s.CT(100)
	if !ok {
		t.Fatal("no CT 100")
	}
	return ct.Config["description"]
}

// wantNoTempFiles checks that the keys' temporary file is gone.
func wantNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("temporary dir holds %v (%v), want it empty", ents, err)
	}
}

func withKeys(a enforce.Assignment, keys ...string) enforce.Assignment {
	a.SSHKeys = keys
	return a
}

func TestChangedKeysArePushedIntoTheRunningCT(t *testing.T) {
	tmp := t.TempDir()
	s, e := newHost(t, func(_ *hostexec.Host, c *Config) { c.TempDir = tmp })
	a := gpuAssignment(idA, "alice", 8, 65536, 0)
	mustApply(t, e, withKeys(a, keyA))
	if f := authorizedKeysOf(t, s); f.Content != keyA+"\n" {
		t.Fatalf("authorized_keys after the create = %q, want keyA", f.Content)
	}
	if d := descriptionOf(t, s); !strings.Contains(d, "\ngpulab-keys "+sha(keyA+"\n")+"\n") {
		t.Errorf("description after the create %q lacks the keys' digest", d)
	}
	s.Requests()

	mustApply(t, e, withKeys(a, keyA, keyB))
	rs := s.Requests()
	want := []string{"CLI pct exec 100", "CLI pct push 100", "PUT /nodes/pve1/lxc/100/config"}
	if got := calls(pvetest.Mutations(rs)); !slices.Equal(got, want) {
		t.Fatalf("mutations = %q, want %q", got, want)
	}
	if got := formOf(t, rs, "CLI", "pct exec 100")["command"]; !slices.Equal(got, []string{"mkdir", "-p", "-m", "0700", "/root/.ssh"}) {
		t.Errorf("pct exec %q, want mkdir -p -m 0700 /root/.ssh", got)
	}
	push := formOf(t, rs, "CLI", "pct push 100")
	for k, v := range map[string]string{"destination": "/root/.ssh/authorized_keys", "perms": "0600", "user": "0", "group": "0"} {
		if got := push.Get(k); got != v {
			t.Errorf("pct push %s = %q, want %q", k, got, v)
		}
	}
	if f := authorizedKeysOf(t, s); f.Content != keyA+"\n"+keyB+"\n" || f.Mode != 0o600 || f.User != "0" || f.Group != "0" {
		t.Errorf("authorized_keys = %+v, want both keys, mode 0600, owned by root", f)
	}
	put := formOf(t, rs, "PUT", "/nodes/pve1/lxc/100/config")
	if len(put) != 1 || put.Get("description") != descriptionOf(t, s) {
		t.Errorf("PUT config %v, want the description alone", put)
	}
	d := descriptionOf(t, s)
	if wantD := description(withKeys(a, keyA, keyB)); d != wantD {
		t.Errorf("description = %q, want %q", d, wantD)
	}
	if !strings.Contains(d, "gpulab-keys "+sha(keyA+"\n"+keyB+"\n")+"\n") || strings.Count(d, "gpulab-keys ") != 1 {
		t.Errorf("description %q: want exactly one digest line, of both keys", d)
	}
	if id, user, ok := marker(Tag, d); !ok || id != idA || user != "alice" {
		t.Errorf("marker(description) = %q, %q, %v; want the assignment and alice", id, user, ok)
	}
	wantNoTempFiles(t, tmp)

	mustApply(t, e, withKeys(a, keyA, keyB))
	if m := pvetest.Mutations(s.Requests()); len(m) != 0 {
		t.Errorf("Apply with the same keys made %q", calls(m))
	}

	// A key taken away no longer logs in.
	mustApply(t, e, withKeys(a, keyB))
	if f := authorizedKeysOf(t, s); f.Content != keyB+"\n" {
		t.Errorf("authorized_keys after removing keyA = %q, want keyB alone", f.Content)
	}
	// No key: nobody logs in.
	mustApply(t, e, withKeys(a))
	if f := authorizedKeysOf(t, s); f.Content != "" || f.Mode != 0o600 {
		t.Errorf("authorized_keys without keys = %+v, want it empty, mode 0600", f)
	}
	if d := descriptionOf(t, s); recordedKeys(d) != sha("") {
		t.Errorf("description %q: want the digest of no keys", d)
	}
	s.Requests()
	mustApply(t, e, withKeys(a))
	if m := pvetest.Mutations(s.Requests()); len(m) != 0 {
		t.Errorf("Apply with the same (no) keys made %q", calls(m))
	}
	wantNoTempFiles(t, tmp)
}

// A CT made by an older agent records no digest: its keys are pushed once,
// into a CT whose template has no /root/.ssh, and the rest of its
// description stays.
func TestACTFromAnOlderAgentGetsItsKeysPushedOnce(t *testing.T) {
	s, e := newHost(t)
	old := "gpulab-assignment " + idA + "\ngpulab-user alice\nManaged by gpulab-agent.\nnote: lab 3\n"
	s.AddUser(pvetest.User{UserID: "alice@pve", Comment: UserComment})
	s.AddACL(pvetest.ACL{Path: "/vms/100", RoleID: "PVEVMUser", Type: "user", UGID: "alice@pve"})
	s.AddCT(pvetest.CT{VMID: 100, Status: "running", Config: map[string]string{
		"tags": Tag, "description": old, "cores": "1", "memory": "1024", "hostname": "gpulab-6f1c1d2e",
	}})
	a := withKeys(gpuAssignment(idA, "alice", 1, 1024), keyA, keyB)
	mustApply(t, e, a)
	want := []string{"CLI pct exec 100", "CLI pct push 100", "PUT /nodes/pve1/lxc/100/config"}
	if got := calls(pvetest.Mutations(s.Requests())); !slices.Equal(got, want) {
		t.Fatalf("mutations = %q, want %q", got, want)
	}
	if f := authorizedKeysOf(t, s); f.Content != keyA+"\n"+keyB+"\n" {
		t.Errorf("authorized_keys = %q, want both keys", f.Content)
	}
	wantD := "gpulab-assignment " + idA + "\ngpulab-user alice\ngpulab-keys " + sha(keyA+"\n"+keyB+"\n") + "\nManaged by gpulab-agent.\nnote: lab 3\n"
	if d := descriptionOf(t, s); d != wantD {
		t.Errorf("description = %q, want %q", d, wantD)
	}
	mustApply(t, e, a)
	if m := pvetest.Mutations(s.Requests()); len(m) != 0 {
		t.Errorf("second Apply made %q", calls(m))
	}
}

// pct push needs a running CT: a stopped one is started first.
func TestKeysChangedOnAStoppedCTArePushedAfterTheStart(t *testing.T) {
	s, e := newHost(t)
	a := gpuAssignment(idA, "alice", 1, 1024, 0)
	mustApply(t, e, a) // no keys: the template's CT has no /root/.ssh
	s.SetCTStatus(100, "stopped")
	s.Requests()
	mustApply(t, e, withKeys(a, keyA))
	want := []string{"POST /nodes/pve1/lxc/100/status/start", "CLI pct exec 100", "CLI pct push 100", "PUT /nodes/pve1/lxc/100/config"}
	if got := calls(pvetest.Mutations(s.Requests())); !slices.Equal(got, want) {
		t.Errorf("mutations = %q, want %q", got, want)
	}
	if f := authorizedKeysOf(t, s); f.Content != keyA+"\n" {
		t.Errorf("authorized_keys = %q, want keyA", f.Content)
	}
}

func TestAFailedKeyPushIsReportedAndRetried(t *testing.T) {
	tmp := t.TempDir()
	failPush := true
	s, e := newHost(t, func(h *hostexec.Host, c *Config) {
		c.TempDir = tmp
		pct := h.Runner
		h.Runner = runnerFunc(func(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
			if failPush && len(args) > 0 && args[0] == "push" {
				return nil, []byte("failed to open /root/.ssh/authorized_keys for writing: Read-only file system\n"), errors.New("exit status 255")
			}
			return pct.Run(ctx, name, args...)
		})
	})
	a := gpuAssignment(idA, "alice", 1, 1024)
	mustApply(t, e, withKeys(a, keyA))
	err := e.Apply(context.Background(), withKeys(a, keyB))
	if err == nil || !strings.Contains(err.Error(), "push the SSH keys into CT 100 of assignment "+idA+": pct push: failed to open /root/.ssh/authorized_keys for writing: Read-only file system") {
		t.Fatalf("Apply = %v, want it to say the push failed and why", err)
	}
	if d := descriptionOf(t, s); recordedKeys(d) != sha(keyA+"\n") {
		t.Errorf("description %q after a failed push: want keyA's digest still", d)
	}
	if f := authorizedKeysOf(t, s); f.Content != keyA+"\n" {
		t.Errorf("authorized_keys = %q, want keyA still", f.Content)
	}
	wantNoTempFiles(t, tmp)

	failPush = false
	s.Requests()
	mustApply(t, e, withKeys(a, keyB))
	if got := calls(pvetest.Mutations(s.Requests())); !slices.Contains(got, "CLI pct push 100") {
		t.Errorf("mutations = %q, want the push retried", got)
	}
	if f := authorizedKeysOf(t, s); f.Content != keyB+"\n" {
		t.Errorf("authorized_keys = %q, want keyB", f.Content)
	}
	if d := descriptionOf(t, s); recordedKeys(d) != sha(keyB+"\n") {
		t.Errorf("description %q: want keyB's digest", d)
	}
}

func TestWithKeysDigestReplacesOnlyItsLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"gpulab-assignment x\ngpulab-user a\ngpulab-keys old\nrest\n", "gpulab-assignment x\ngpulab-user a\ngpulab-keys new\nrest\n"},
		{"gpulab-assignment x\ngpulab-user a\nrest", "gpulab-assignment x\ngpulab-user a\ngpulab-keys new\nrest\n"},
		{"gpulab-keys old\ngpulab-assignment x\ngpulab-keys older\n", "gpulab-keys new\ngpulab-assignment x\n"},
		{"", "gpulab-keys new\n"},
	} {
		if got := withKeysDigest(c.in, "new"); got != c.want {
			t.Errorf("withKeysDigest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
