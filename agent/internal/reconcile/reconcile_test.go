package reconcile

import (
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
)

var (
	keyA1 = sshKey("ssh-ed25519", 1, "alice@laptop")
	keyA2 = sshKey("ecdsa-sha2-nistp256", 2, "")
	keyA3 = sshKey("sk-ssh-ed25519@openssh.com", 3, "alice yubikey")
	keyC1 = sshKey("ssh-rsa", 4, "carol")
)

func TestApplyCreatesMarkedUsersAndWritesTheirKeys(t *testing.T) {
	h := newFakeHost(t)
	st := h.reconciler().Apply(context.Background(), []*agentv1.Assignment{
		assign("a-1", "alice", keyA1, keyA2),
		assign("c-1", "carol", keyC1),
	})

	if got, want := outcome(st), []string{"a-1=APPLIED", "c-1=APPLIED"}; !slices.Equal(got, want) {
		t.Fatalf("outcome = %q, want %q", got, want)
	}
	if len(st.GetErrors()) != 0 {
		t.Errorf("node errors = %q, want none", st.GetErrors())
	}
	wantCalls := [][]string{
		{"useradd", "--create-home", "--shell", "/bin/bash", "--comment", "gpulab-managed (created for assignment a-1)", "--user-group", "alice"},
		{"useradd", "--create-home", "--shell", "/bin/bash", "--comment", "gpulab-managed (created for assignment c-1)", "--user-group", "carol"},
	}
	if got := accountCalls(h.calls()); !slices.EqualFunc(got, wantCalls, slices.Equal) {
		t.Errorf("commands = %q, want %q", got, wantCalls)
	}
	alice := h.account("alice")
	if !alice.managed() || alice.password != "!" {
		t.Errorf("alice = %+v, want the gpulab marker and a locked password", alice)
	}
	checkKeys(t, h, alice, keysContent(keyA1, keyA2))
	checkKeys(t, h, h.account("carol"), keysContent(keyC1))
	// useradd (the stand-in as the real one under UMASK 022) made 0755.
	for _, home := range []string{"home/alice", "home/carol"} {
		if mode := stat(t, h.path(home)).Mode & 0o7777; mode != homeMode {
			t.Errorf("%s has mode %o, want %o", home, mode, homeMode)
		}
	}
}

func TestSecondApplyWithTheSameInputChangesNothing(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	desired := []*agentv1.Assignment{assign("a-1", "alice", keyA1)}
	r.Apply(context.Background(), desired)
	h.calls()
	before := stat(t, h.path("home/alice/.ssh/authorized_keys"))
	passwd, shadow := h.read("etc/passwd"), h.read("etc/shadow")

	st := r.Apply(context.Background(), desired)

	if got, want := outcome(st), []string{"a-1=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	if got := h.calls(); len(got) != 0 {
		t.Errorf("second Apply ran %q, want nothing", got)
	}
	after := stat(t, h.path("home/alice/.ssh/authorized_keys"))
	if after.Ino != before.Ino || after.Mtim != before.Mtim {
		t.Error("second Apply rewrote authorized_keys")
	}
	if h.read("etc/passwd") != passwd || h.read("etc/shadow") != shadow {
		t.Error("second Apply changed passwd or shadow")
	}
}

func TestAssignmentsSharingAUserGetTheUnionOfTheirKeys(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	// Listed out of id order: the file must not depend on the list's order.
	st := r.Apply(context.Background(), []*agentv1.Assignment{
		assign("a-2", "alice", keyA2, keyA3),
		assign("a-1", "alice", keyA1, keyA2),
	})

	if got, want := outcome(st), []string{"a-1=APPLIED", "a-2=APPLIED"}; !slices.Equal(got, want) {
		t.Fatalf("outcome = %q, want %q", got, want)
	}
	if got := accountCalls(h.calls()); len(got) != 1 || got[0][0] != "useradd" {
		t.Errorf("commands = %q, want one useradd", got)
	}
	checkKeys(t, h, h.account("alice"), keysContent(keyA1, keyA2, keyA3))

	// Revoking one of them leaves the other's keys and the account alone.
	st = r.Apply(context.Background(), []*agentv1.Assignment{assign("a-2", "alice", keyA2, keyA3)})
	if got, want := outcome(st), []string{"a-1=REMOVED", "a-2=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	if got := accountCalls(h.calls()); len(got) != 0 {
		t.Errorf("commands = %q, want none", got)
	}
	checkKeys(t, h, h.account("alice"), keysContent(keyA2, keyA3))
}

func TestRevokedAssignmentEmptiesKeysLocksTheAccountAndKillsItsProcesses(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	r.Apply(context.Background(), []*agentv1.Assignment{assign("a-1", "alice", keyA1), assign("c-1", "carol", keyC1)})
	h.calls()
	alice := h.account("alice")
	h.addProcess("4242", alice.uid)

	st := r.Apply(context.Background(), []*agentv1.Assignment{assign("c-1", "carol", keyC1)})

	if got, want := outcome(st), []string{"a-1=REMOVED", "c-1=APPLIED"}; !slices.Equal(got, want) {
		t.Fatalf("outcome = %q, want %q", got, want)
	}
	wantCalls := [][]string{
		{"usermod", "--lock", "--expiredate", "1", "alice"},
		{"pkill", "-KILL", "-u", "alice"},
	}
	if got := accountCalls(h.calls()); !slices.EqualFunc(got, wantCalls, slices.Equal) {
		t.Errorf("commands = %q, want %q", got, wantCalls)
	}
	alice = h.account("alice")
	if !alice.locked() {
		t.Errorf("alice = %+v, want her locked and expired", alice)
	}
	checkKeys(t, h, alice, "")
	if _, err := os.Stat(h.path("home/alice")); err != nil {
		t.Errorf("alice's home is gone (%v); the default policy keeps it", err)
	}

	// Once the processes are gone the removal is complete: nothing more
	// runs, and REMOVED was reported once.
	if err := os.RemoveAll(h.path("proc")); err != nil {
		t.Fatal(err)
	}
	st = r.Apply(context.Background(), []*agentv1.Assignment{assign("c-1", "carol", keyC1)})
	if got, want := outcome(st), []string{"c-1=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	if got := h.calls(); len(got) != 0 {
		t.Errorf("commands = %q, want none", got)
	}
}

func TestPkillFindingNothingIsNotAnError(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	r.Apply(context.Background(), []*agentv1.Assignment{assign("a-1", "alice", keyA1)})
	h.addProcess("4242", h.account("alice").uid)
	mustWrite(t, h.path("pkill-status"), "1\n", 0o644)

	st := r.Apply(context.Background(), nil)

	if got, want := outcome(st), []string{"a-1=REMOVED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
}

func TestReassigningALockedUserUnlocksIt(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	r.Apply(context.Background(), []*agentv1.Assignment{assign("a-1", "alice", keyA1)})
	r.Apply(context.Background(), nil)
	h.calls()

	st := r.Apply(context.Background(), []*agentv1.Assignment{assign("a-9", "alice", keyA3)})

	if got, want := outcome(st), []string{"a-9=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	// The password stays useradd's "!": --unlock would only warn.
	wantCalls := [][]string{{"usermod", "--expiredate", "", "alice"}}
	if got := accountCalls(h.calls()); !slices.EqualFunc(got, wantCalls, slices.Equal) {
		t.Errorf("commands = %q, want %q", got, wantCalls)
	}
	alice := h.account("alice")
	if alice.expire != "" || alice.password != "!" {
		t.Errorf("alice = %+v, want no expiry and the password-less \"!\"", alice)
	}
	checkKeys(t, h, alice, keysContent(keyA3))
}

func TestAnExistingUserWithoutTheMarkerIsNeverTouched(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	passwd, shadow := h.read("etc/passwd"), h.read("etc/shadow")

	st := r.Apply(context.Background(), []*agentv1.Assignment{assign("b-1", "bob", keyA1), assign("a-1", "alice", keyA1)})

	want := []string{"a-1=APPLIED", "b-1=FAILED: Linux user bob already exists and was not created by gpulab, so it is left untouched."}
	if got := outcome(st); !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	for _, c := range h.calls() {
		if slices.Contains(c, "bob") {
			t.Errorf("ran %q on bob", c)
		}
	}
	// Not desired any more: still not ours to lock.
	r.Apply(context.Background(), nil)
	for _, c := range h.calls() {
		if slices.Contains(c, "bob") {
			t.Errorf("ran %q on bob", c)
		}
	}
	if got := h.read("home/bob/.ssh/authorized_keys"); got != bobKeys {
		t.Errorf("bob's authorized_keys = %q, want it unchanged", got)
	}
	bobLines := func(s string) []string {
		var out []string
		for l := range strings.Lines(s) {
			if strings.HasPrefix(l, "bob:") {
				out = append(out, l)
			}
		}
		return out
	}
	if !slices.Equal(bobLines(h.read("etc/passwd")), bobLines(passwd)) || !slices.Equal(bobLines(h.read("etc/shadow")), bobLines(shadow)) {
		t.Error("bob's passwd or shadow entry changed")
	}
}

func TestInvalidInputIsRefusedBeforeTouchingTheHost(t *testing.T) {
	cases := map[string]*agentv1.Assignment{
		"system user":          assign("x", "root", keyA1),
		"reserved name":        assign("x", "nobody", keyA1),
		"upper case":           assign("x", "Alice", keyA1),
		"shell metacharacters": assign("x", "a;rm -rf /", keyA1),
		"path":                 assign("x", "../etc", keyA1),
		"too long":             assign("x", strings.Repeat("a", 33), keyA1),
		"empty name":           assign("x", "", keyA1),
		"id with a colon":      assign("x:y", "alice", keyA1),
		"options before a key": assign("x", "alice", `command="/bin/sh" `+keyA1),
		"unknown key type":     assign("x", "alice", "ssh-dss AAAAB3NzaC1kc3MAAAA="),
		"bad base64":           assign("x", "alice", "ssh-ed25519 not*base64"),
		"newline in a key":     assign("x", "alice", keyA1+"\n"+keyC1),
		"blob of another type": assign("x", "alice", "ssh-rsa "+strings.Fields(keyA1)[1]),
		"key without its data": assign("x", "alice", "ssh-ed25519"),
		"unspecified mode":     {AssignmentId: "x", LinuxUsername: "alice", SshPublicKeys: []string{keyA1}},
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t)
			st := h.reconciler().Apply(context.Background(), []*agentv1.Assignment{a})
			got := st.GetAssignments()
			if len(got) != 1 || got[0].GetState() != agentv1.ApplyState_APPLY_STATE_FAILED || got[0].GetError() == "" {
				t.Errorf("report = %v, want one FAILED with an error", got)
			}
			if c := h.calls(); len(c) != 0 {
				t.Errorf("ran %q, want nothing", c)
			}
			if _, err := os.Stat(h.path("home/alice")); err == nil {
				t.Error("a home was created")
			}
		})
	}
}

func TestMalformedListEntriesBecomeNodeErrors(t *testing.T) {
	h := newFakeHost(t)
	st := h.reconciler().Apply(context.Background(), []*agentv1.Assignment{
		assign("", "alice", keyA1),
		assign("a-1", "alice", keyA1),
		assign("a-1", "carol", keyC1),
	})
	if got, want := outcome(st), []string{"a-1=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	if got := st.GetErrors(); len(got) != 2 {
		t.Errorf("node errors = %q, want two", got)
	}
	if h.account("carol") != nil {
		t.Error("the duplicate entry created carol")
	}
}

func TestAnExpiredAssignmentIsRemovedAtItsExpiry(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	a := assign("a-1", "alice", keyA1)
	r.Apply(context.Background(), []*agentv1.Assignment{a})
	h.calls()

	a.ExpiresAt = timestamppb.New(testNow.Add(-time.Second))
	st := r.Apply(context.Background(), []*agentv1.Assignment{a, assign("never", "carol", keyC1)})

	if got, want := outcome(st), []string{"a-1=REMOVED", "never=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	if !h.account("alice").locked() {
		t.Error("alice is not locked after her assignment expired")
	}
	checkKeys(t, h, h.account("alice"), "")
}

func TestRemoveHomesPolicyDeletesTheAccountAndItsHome(t *testing.T) {
	h := newFakeHost(t)
	h.cfg.RemoveHomes = true
	r := h.reconciler()
	r.Apply(context.Background(), []*agentv1.Assignment{assign("a-1", "alice", keyA1)})
	h.calls()

	st := r.Apply(context.Background(), nil)

	if got, want := outcome(st), []string{"a-1=REMOVED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	wantCalls := [][]string{
		{"usermod", "--lock", "--expiredate", "1", "alice"},
		{"userdel", "--remove", "alice"},
	}
	if got := accountCalls(h.calls()); !slices.EqualFunc(got, wantCalls, slices.Equal) {
		t.Errorf("commands = %q, want %q", got, wantCalls)
	}
	if h.account("alice") != nil {
		t.Error("alice still exists")
	}
	if _, err := os.Stat(h.path("home/alice")); !os.IsNotExist(err) {
		t.Errorf("alice's home: %v, want it gone", err)
	}
}

func TestAFailingCommandFailsTheAssignmentWithTheToolsReason(t *testing.T) {
	h := newFakeHost(t)
	// A group named like the user makes the real useradd refuse --user-group.
	mustWrite(t, h.path("etc/group"), baseGroup+"dave:x:3000:\n", 0o644)

	st := h.reconciler().Apply(context.Background(), []*agentv1.Assignment{assign("d-1", "dave", keyA1)})

	got := st.GetAssignments()
	if len(got) != 1 || got[0].GetState() != agentv1.ApplyState_APPLY_STATE_FAILED ||
		!strings.Contains(got[0].GetError(), "group dave exists") || strings.Contains(got[0].GetError(), "\n") {
		t.Errorf("report = %v, want FAILED with useradd's reason on one line", got)
	}
}

func TestAMarkedAccountInTheSystemRangeIsLeftAlone(t *testing.T) {
	h := newFakeHost(t)
	mustWrite(t, h.path("etc/passwd"), basePasswd+"sneaky:x:5:5:gpulab-managed:/home/sneaky:/bin/sh\n", 0o644)
	mustWrite(t, h.path("etc/shadow"), baseShadow+"sneaky:*:20000:0:99999:7:::\n", 0o640)

	st := h.reconciler().Apply(context.Background(), nil)

	if got := st.GetErrors(); len(got) != 1 || !strings.Contains(got[0], "uid 5") {
		t.Errorf("node errors = %q, want one about uid 5", got)
	}
	if c := h.calls(); len(c) != 0 {
		t.Errorf("ran %q, want nothing", c)
	}
}

func stat(t *testing.T, p string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func lstat(t *testing.T, p string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func mustRemove(t *testing.T, p string) {
	t.Helper()
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
