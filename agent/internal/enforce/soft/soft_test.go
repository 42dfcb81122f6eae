package soft

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/enforcetest"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/sshd"
	"github.com/gpulab/gpulab/agent/internal/sshd/sshdtest"
)

const (
	uuid0 = "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02"
	uuid1 = "GPU-11111111-2222-3333-4444-555555555555"
	uuid3 = "GPU-33333333-2222-3333-4444-555555555555"
)

// fakeHost is a fake root with etc/ssh/sshd_config.d and a Runner standing in
// for sshd and systemctl: it records every argv, and its sshd -T prints the
// SetEnv of the user's drop-in as the real one does.
type fakeHost struct {
	t    *testing.T
	root string

	mu    sync.Mutex
	calls [][]string
	// sshdErr fails sshd -T, as a syntax error anywhere would; ignore makes
	// it print no setenv, as an sshd without the Include would; units are the
	// loaded systemd units.
	sshdErr error
	ignore  bool
	units   []string
}

func newFakeHost(t *testing.T) *fakeHost {
	root := t.TempDir()
	// A node booted with systemd, whose sshd is reloaded through its unit.
	for _, d := range []string{sshd.DropInDir, "/run/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &fakeHost{t: t, root: root, units: []string{"ssh.service"}}
}

func (h *fakeHost) enforcer() *Enforcer { return New(hostexec.Host{Root: h.root, Runner: h}, nil) }

func (h *fakeHost) Run(_ context.Context, name string, args ...string) ([]byte, []byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, append([]string{name}, args...))
	switch {
	case name == "sshd" && h.sshdErr != nil:
		return nil, []byte("/etc/ssh/sshd_config.d/x.conf line 1: Bad configuration option: Bogus\n"), h.sshdErr
	case name == "sshd" && h.ignore:
		return []byte("port 22\n"), nil, nil
	case name == "systemctl" && len(args) == 4 && args[0] == "show":
		if slices.Contains(h.units, args[3]) {
			return []byte("loaded\n"), nil, nil
		}
		return []byte("not-found\n"), nil, nil
	}
	stdout, stderr, err, ok := sshdtest.Answer(filepath.Join(h.root, sshd.DropInDir), name, args)
	if !ok {
		return nil, nil, errors.New("unexpected command")
	}
	return stdout, stderr, err
}

func (h *fakeHost) take() [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}

func (h *fakeHost) dropIn(user string) (string, bool) {
	data, err := os.ReadFile(filepath.Join(h.root, sshd.DropInDir, fileName(user)))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return string(data), true
}

func assignment(id, user string, gpus ...enforce.GPU) enforce.Assignment {
	return enforce.Assignment{ID: id, LinuxUsername: user, GPUs: gpus}
}

var (
	checkAlice = []string{"sshd", "-T", "-C", "user=alice,host=localhost,addr=127.0.0.1,laddr=127.0.0.1,lport=22"}
	findUnit   = []string{"systemctl", "show", "--property=LoadState", "--value", "ssh.service"}
	reload     = []string{"systemctl", "try-reload-or-restart", "ssh.service"}
)

func TestSoftKeepsTheEnforcerContract(t *testing.T) {
	enforcetest.Conformance(t, func(t *testing.T) enforce.Enforcer { return newFakeHost(t).enforcer() })
}

func TestApplyWritesAnSshdDropInWithTheGPUsByUUID(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	// Out of index order: CUDA's device 0 must be the lowest index.
	if err := e.Apply(context.Background(), assignment("a-1", "alice", enforce.GPU{Index: 3, UUID: uuid3}, enforce.GPU{Index: 0, UUID: uuid0})); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got, _ := h.dropIn("alice")
	want := header() +
		"# gpulab-assignment a-1 0=" + uuid0 + ",3=" + uuid3 + "\n" +
		"Match User alice\n\tSetEnv CUDA_VISIBLE_DEVICES=" + uuid0 + "," + uuid3 + "\nMatch all\n"
	if got != want {
		t.Errorf("drop-in =\n%s\nwant\n%s", got, want)
	}
	fi, err := os.Stat(filepath.Join(h.root, sshd.DropInDir, fileName("alice")))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("drop-in mode = %v, %v; want 0644", fi.Mode(), err)
	}
	if got, want := h.take(), [][]string{checkAlice, findUnit, reload}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("commands = %q, want %q", got, want)
	}

	// A second Apply, by this enforcer or a restarted agent's once it has
	// reloaded, runs nothing.
	if err := e.Apply(context.Background(), assignment("a-1", "alice", enforce.GPU{Index: 0, UUID: uuid0}, enforce.GPU{Index: 3, UUID: uuid3})); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if got := h.take(); len(got) != 0 {
		t.Errorf("second Apply ran %q, want nothing", got)
	}
	restarted := h.enforcer()
	for i := range 2 {
		if err := restarted.Apply(context.Background(), assignment("a-1", "alice", enforce.GPU{Index: 0, UUID: uuid0}, enforce.GPU{Index: 3, UUID: uuid3})); err != nil {
			t.Fatalf("Apply after a restart: %v", err)
		}
		if got, want := len(h.take()), []int{3, 0}[i]; got != want {
			t.Errorf("Apply #%d after a restart ran %d commands, want %d (one check and reload, then none)", i+1, got, want)
		}
	}
}

func TestAUsersAssignmentsShareOneDropInWithTheUnionOfTheirGPUs(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	ctx := context.Background()
	for _, a := range []enforce.Assignment{
		assignment("a-2", "alice", enforce.GPU{Index: 1, UUID: uuid1}),
		assignment("a-1", "alice", enforce.GPU{Index: 0, UUID: uuid0}),
		assignment("c-1", "carol"),
	} {
		if err := e.Apply(ctx, a); err != nil {
			t.Fatalf("Apply %s: %v", a.ID, err)
		}
	}
	alice, _ := h.dropIn("alice")
	if !strings.Contains(alice, "\tSetEnv CUDA_VISIBLE_DEVICES="+uuid0+","+uuid1+"\n") {
		t.Errorf("alice's drop-in lacks the union of her GPUs:\n%s", alice)
	}
	// No GPU: CUDA sees none, rather than all.
	if carol, _ := h.dropIn("carol"); !strings.Contains(carol, "\tSetEnv CUDA_VISIBLE_DEVICES=\n") {
		t.Errorf("carol's drop-in does not hide every GPU:\n%s", carol)
	}
	if got, _ := e.Applied(ctx); !slices.Equal(got, []string{"a-1", "a-2", "c-1"}) {
		t.Errorf("Applied = %q", got)
	}

	if err := e.Remove(ctx, "a-1"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if alice, _ := h.dropIn("alice"); !strings.Contains(alice, "\tSetEnv CUDA_VISIBLE_DEVICES="+uuid1+"\n") {
		t.Errorf("after removing a-1 alice's drop-in is\n%s", alice)
	}
	if err := e.Remove(ctx, "a-2"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, ok := h.dropIn("alice"); ok {
		t.Error("alice's drop-in is still there after her last assignment left")
	}
	h.take()
	if err := e.Remove(ctx, "a-2"); err != nil {
		t.Fatalf("Remove again: %v", err)
	}
	if got := h.take(); len(got) != 0 {
		t.Errorf("removing what is gone ran %q", got)
	}
}

func TestAnAssignmentMovedToAnotherUserLeavesTheOldDropIn(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	ctx := context.Background()
	if err := e.Apply(ctx, assignment("a-1", "alice", enforce.GPU{Index: 0, UUID: uuid0})); err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, assignment("a-1", "carol", enforce.GPU{Index: 0, UUID: uuid0})); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.dropIn("alice"); ok {
		t.Error("alice keeps a drop-in for an assignment now carol's")
	}
	if _, ok := h.dropIn("carol"); !ok {
		t.Error("carol has no drop-in")
	}
}

func TestAConfigurationSshdRefusesOrIgnoresIsRolledBackAndNotReloaded(t *testing.T) {
	cases := map[string]func(h *fakeHost){
		"sshd -T fails":         func(h *fakeHost) { h.sshdErr = errors.New("exit status 255") },
		"sshd ignores drop-ins": func(h *fakeHost) { h.ignore = true },
	}
	for name, breakIt := range cases {
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t)
			e := h.enforcer()
			ctx := context.Background()
			if err := e.Apply(ctx, assignment("a-1", "alice", enforce.GPU{Index: 0, UUID: uuid0})); err != nil {
				t.Fatal(err)
			}
			before, _ := h.dropIn("alice")
			h.take()
			breakIt(h)

			err := e.Apply(ctx, assignment("a-2", "alice", enforce.GPU{Index: 1, UUID: uuid1}))
			if err == nil {
				t.Fatal("Apply succeeded, want an error")
			}
			if got, _ := h.dropIn("alice"); got != before {
				t.Errorf("drop-in after the failure =\n%s\nwant the previous one\n%s", got, before)
			}
			if got, want := h.take(), [][]string{checkAlice}; !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("commands = %q, want only the check (no reload)", got)
			}
			entries, _ := os.ReadDir(filepath.Join(h.root, sshd.DropInDir))
			if len(entries) != 1 {
				t.Errorf("drop-in directory holds %d entries, want 1 (no temporary file left)", len(entries))
			}

			// A new user's drop-in is removed again.
			if err := e.Apply(ctx, assignment("c-1", "carol")); err == nil {
				t.Fatal("Apply for carol succeeded, want an error")
			}
			if _, ok := h.dropIn("carol"); ok {
				t.Error("carol's refused drop-in was left in place")
			}
		})
	}
}

func TestRHELsSshdUnitIsFoundAndAHostWithoutOneFails(t *testing.T) {
	h := newFakeHost(t)
	h.units = []string{"sshd.service"}
	if err := h.enforcer().Apply(context.Background(), assignment("a-1", "alice")); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := h.take(); !slices.Equal(got[len(got)-1], []string{"systemctl", "try-reload-or-restart", "sshd.service"}) {
		t.Errorf("commands = %q, want a reload of sshd.service last", got)
	}

	h = newFakeHost(t)
	h.units = nil
	err := h.enforcer().Apply(context.Background(), assignment("a-1", "alice"))
	if err == nil || !strings.Contains(err.Error(), "neither ssh.service nor sshd.service is a loaded systemd unit") {
		t.Errorf("Apply error = %v, want one naming the missing units", err)
	}
}

func TestAFailedReloadIsRetriedByTheNextApply(t *testing.T) {
	h := newFakeHost(t)
	h.units = nil
	e := h.enforcer()
	ctx := context.Background()
	if err := e.Apply(ctx, assignment("a-1", "alice")); err == nil {
		t.Fatal("Apply succeeded without a unit to reload")
	}
	h.units = []string{"ssh.service"}
	h.take()
	if err := e.Apply(ctx, assignment("a-1", "alice")); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got, want := h.take(), [][]string{checkAlice, findUnit, reload}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("commands = %q, want %q", got, want)
	}
}

func TestNamesThatWouldReachSshdsConfigurationAreRefused(t *testing.T) {
	cases := map[string]enforce.Assignment{
		"user with a pattern":   assignment("a-1", "al*"),
		"user with a space":     assignment("a-1", "alice bob"),
		"id with a newline":     assignment("a-1\nMatch all", "alice"),
		"GPU by index":          assignment("a-1", "alice", enforce.GPU{Index: 0, UUID: "0"}),
		"UUID with a newline":   assignment("a-1", "alice", enforce.GPU{UUID: uuid0 + "\nPermitRootLogin yes"}),
		"MIG device (not soft)": assignment("a-1", "alice", enforce.GPU{UUID: "MIG-" + uuid0[4:]}),
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t)
			if err := h.enforcer().Apply(context.Background(), a); err == nil {
				t.Error("Apply succeeded, want an error")
			}
			if c := h.take(); len(c) != 0 {
				t.Errorf("ran %q", c)
			}
			if entries, _ := os.ReadDir(filepath.Join(h.root, sshd.DropInDir)); len(entries) != 0 {
				t.Errorf("wrote %d files", len(entries))
			}
		})
	}
}

func TestAHostWithoutTheDropInDirectoryFailsWithoutCreatingIt(t *testing.T) {
	h := newFakeHost(t)
	if err := os.Remove(filepath.Join(h.root, sshd.DropInDir)); err != nil {
		t.Fatal(err)
	}
	err := h.enforcer().Apply(context.Background(), assignment("a-1", "alice"))
	if err == nil || !strings.Contains(err.Error(), "needs an sshd that includes /etc/ssh/sshd_config.d/*.conf") {
		t.Errorf("Apply error = %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.root, sshd.DropInDir)); !os.IsNotExist(err) {
		t.Errorf("the directory was created (%v)", err)
	}
}

// fileName and header are the default (soft) mode's drop-in name and header.
func fileName(user string) string { return sshd.FileName(Mode, user) }
func header() string              { return sshd.Header(Mode) }
