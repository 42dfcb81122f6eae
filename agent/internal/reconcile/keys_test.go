package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
)

func TestPlantedSymlinksInTheHomeAreNotFollowed(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	r.Apply(context.Background(), []*agentv1.Assignment{assign("a-1", "alice", keyA1)})
	outside := h.path("outside")
	mustWrite(t, outside, "precious\n", 0o644)

	// authorized_keys -> a file outside: replaced, the target untouched.
	keys := h.path("home/alice/.ssh/authorized_keys")
	mustRemove(t, keys)
	mustSymlink(t, outside, keys)
	st := r.Apply(context.Background(), []*agentv1.Assignment{assign("a-1", "alice", keyA2)})
	if got, want := outcome(st), []string{"a-1=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	if got := h.read("outside"); got != "precious\n" {
		t.Errorf("the symlink's target now holds %q", got)
	}
	checkKeys(t, h, h.account("alice"), keysContent(keyA2))

	// ~/.ssh -> a directory outside: refused, nothing written there.
	outDir := h.path("outside-dir")
	mustMkdir(t, outDir)
	mustRemove(t, h.path("home/alice/.ssh"))
	mustSymlink(t, outDir, h.path("home/alice/.ssh"))
	st = r.Apply(context.Background(), []*agentv1.Assignment{assign("a-1", "alice", keyA3)})
	got := st.GetAssignments()
	if len(got) != 1 || got[0].GetState() != agentv1.ApplyState_APPLY_STATE_FAILED || !strings.Contains(got[0].GetError(), "symlink") {
		t.Errorf("report = %v, want FAILED naming the symlink", got)
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Errorf("wrote %v into the symlink's target", entries)
	}
	// Removal refuses it the same way, and still locks the account.
	r.Apply(context.Background(), nil)
	if !h.account("alice").locked() {
		t.Error("alice is not locked")
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Errorf("wrote %v into the symlink's target", entries)
	}
}

func TestAFIFOPlantedAsAuthorizedKeysDoesNotBlock(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	r.Apply(context.Background(), []*agentv1.Assignment{assign("a-1", "alice", keyA1)})
	keys := h.path("home/alice/.ssh/authorized_keys")
	mustRemove(t, keys)
	if err := syscall.Mkfifo(keys, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan *agentv1.AppliedState)
	go func() { done <- r.Apply(context.Background(), []*agentv1.Assignment{assign("a-1", "alice", keyA1)}) }()
	select {
	case st := <-done:
		if got, want := outcome(st), []string{"a-1=APPLIED"}; !slices.Equal(got, want) {
			t.Errorf("outcome = %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Apply blocked on the FIFO")
	}
	checkKeys(t, h, h.account("alice"), keysContent(keyA1))
}

// checkKeys checks a's authorized_keys: the content (empty: absent or
// empty), mode 0600 in a ~/.ssh of mode 0700, both owned by a.
func checkKeys(t *testing.T, h *fakeHost, a *account, want string) {
	t.Helper()
	if a == nil {
		t.Fatal("no such account")
	}
	path := filepath.Join(h.root, a.home, ".ssh", "authorized_keys")
	data, err := os.ReadFile(path)
	if want == "" && os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != want {
		t.Errorf("%s authorized_keys = %q, want %q", a.name, data, want)
	}
	for p, mode := range map[string]uint32{path: 0o600, filepath.Dir(path): 0o700} {
		st := lstat(t, p)
		if st.Mode&0o7777 != mode || int(st.Uid) != a.uid || int(st.Gid) != a.gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", p, st.Mode&0o7777, st.Uid, st.Gid, mode, a.uid, a.gid)
		}
		if p == path && st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			t.Errorf("%s is not a regular file", p)
		}
	}
}
