//go:build privileged

package reconcile

// These tests run the real useradd, usermod, pkill and userdel as root.
// They change /etc and /home, so they refuse to run unless they are in a
// mount namespace of their own (`make test-privileged` runs them under
// `unshare --mount --propagation private`), where TestMain (privileged_helpers_test.go) bind-mounts
// private copies over /etc, /home, /var/log and /var/mail that vanish with
// the namespace.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
)

func TestPrivilegedLifecycleOnRealAccounts(t *testing.T) {
	r, rec := realHost(t)
	ctx := context.Background()
	desired := []*agentv1.Assignment{
		assign("p-1", "palice", keyA1),
		assign("p-2", "palice", keyA2),
		assign("p-3", "pcarol", keyC1),
	}

	st := r.Apply(ctx, desired)
	if got, want := outcome(st), []string{"p-1=APPLIED", "p-2=APPLIED", "p-3=APPLIED"}; !slices.Equal(got, want) {
		t.Fatalf("outcome = %q, want %q (errors %q)", got, want, st.GetErrors())
	}
	alice, carol := realAccount(t, "palice"), realAccount(t, "pcarol")
	for _, a := range []*account{alice, carol} {
		if a == nil || !a.managed() || a.uid < privUIDMin || a.password != "!" || a.expire != "" {
			t.Fatalf("account = %+v, want marked, uid >= %d, password locked (\"!\"), no expiry", a, privUIDMin)
		}
		if a.home != "/home/"+a.name {
			t.Errorf("%s home = %q", a.name, a.home)
		}
	}
	if !strings.HasPrefix(alice.gecos, "gpulab-managed ") {
		t.Errorf("palice GECOS = %q", alice.gecos)
	}
	realHostKeys(t, alice, keysContent(keyA1, keyA2))
	realHostKeys(t, carol, keysContent(keyC1))
	rec.take()

	// A second Apply is a no-op: no command, no file rewritten.
	keysPath := "/home/palice/.ssh/authorized_keys"
	before := stat(t, keysPath)
	passwd, _ := os.ReadFile("/etc/passwd")
	shadow, _ := os.ReadFile("/etc/shadow")
	st = r.Apply(ctx, desired)
	if got, want := outcome(st), []string{"p-1=APPLIED", "p-2=APPLIED", "p-3=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("second outcome = %q, want %q", got, want)
	}
	if c := rec.take(); len(c) != 0 {
		t.Errorf("second Apply ran %q", c)
	}
	if after := stat(t, keysPath); after.Ino != before.Ino || after.Mtim != before.Mtim {
		t.Error("second Apply rewrote authorized_keys")
	}
	passwd2, _ := os.ReadFile("/etc/passwd")
	shadow2, _ := os.ReadFile("/etc/shadow")
	if string(passwd) != string(passwd2) || string(shadow) != string(shadow2) {
		t.Error("second Apply changed /etc/passwd or /etc/shadow")
	}

	// Revoking carol's assignment locks her, kills her processes, empties
	// her keys and keeps her home.
	sleeper := exec.Command("sleep", "300")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(carol.uid), Gid: uint32(carol.gid)}}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()

	st = r.Apply(ctx, desired[:2])
	if got, want := outcome(st), []string{"p-1=APPLIED", "p-2=APPLIED", "p-3=REMOVED"}; !slices.Equal(got, want) {
		t.Errorf("outcome after revoking = %q, want %q", got, want)
	}
	carol = realAccount(t, "pcarol")
	if !carol.locked() {
		t.Errorf("pcarol = %+v, want locked and expired", carol)
	}
	realHostKeys(t, carol, "")
	select {
	case err := <-waited:
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("pcarol's process ended with %v, want SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		_ = sleeper.Process.Kill()
		t.Error("pcarol's process survived the revocation")
	}
	if _, err := os.Stat("/home/pcarol"); err != nil {
		t.Errorf("pcarol's home: %v, want it kept", err)
	}
	rec.take()
	r.Apply(ctx, desired[:2])
	if c := rec.take(); len(c) != 0 {
		t.Errorf("Apply after the removal ran %q", c)
	}

	// Assigning her again unlocks her.
	st = r.Apply(ctx, desired)
	if got, want := outcome(st), []string{"p-1=APPLIED", "p-2=APPLIED", "p-3=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome after re-assigning = %q, want %q", got, want)
	}
	if carol = realAccount(t, "pcarol"); carol.expire != "" || carol.password != "!" {
		t.Errorf("pcarol = %+v, want no expiry and the password-less \"!\"", carol)
	}
	realHostKeys(t, carol, keysContent(keyC1))
}

func TestPrivilegedAnAccountGpulabDidNotCreateIsNeverTouched(t *testing.T) {
	if out, err := exec.Command("useradd", "--create-home", "--comment", "Dave Local", "pdave").CombinedOutput(); err != nil {
		t.Fatalf("useradd pdave: %v: %s", err, out)
	}
	dave := realAccount(t, "pdave")
	if err := os.MkdirAll("/home/pdave/.ssh", 0o700); err != nil {
		t.Fatal(err)
	}
	const own = "ssh-ed25519 AAAA-dave's-own dave@desk\n"
	if err := os.WriteFile("/home/pdave/.ssh/authorized_keys", []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown("/home/pdave/.ssh/authorized_keys", dave.uid, dave.gid); err != nil {
		t.Fatal(err)
	}
	before := stat(t, "/home/pdave/.ssh/authorized_keys")
	entry := func(s string) string {
		for l := range strings.Lines(s) {
			if strings.HasPrefix(l, "pdave:") {
				return l
			}
		}
		return ""
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	shadow, _ := os.ReadFile("/etc/shadow")

	r, rec := realHost(t)
	st := r.Apply(context.Background(), []*agentv1.Assignment{assign("d-1", "pdave", keyA1)})
	if got := st.GetAssignments(); len(got) != 1 || got[0].GetState() != agentv1.ApplyState_APPLY_STATE_FAILED {
		t.Errorf("report = %v, want FAILED", got)
	}
	r.Apply(context.Background(), nil) // not desired: still not ours to lock
	for _, c := range rec.take() {
		if slices.Contains(c, "pdave") {
			t.Errorf("ran %q on pdave", c)
		}
	}
	passwd2, _ := os.ReadFile("/etc/passwd")
	shadow2, _ := os.ReadFile("/etc/shadow")
	if entry(string(passwd)) != entry(string(passwd2)) || entry(string(shadow)) != entry(string(shadow2)) {
		t.Error("pdave's passwd or shadow entry changed")
	}
	if data, _ := os.ReadFile("/home/pdave/.ssh/authorized_keys"); string(data) != own {
		t.Errorf("pdave's authorized_keys = %q", data)
	}
	if after := stat(t, "/home/pdave/.ssh/authorized_keys"); after.Ino != before.Ino || after.Mtim != before.Mtim || after.Mode != before.Mode {
		t.Error("pdave's authorized_keys was rewritten or chmodded")
	}
}

func TestPrivilegedASymlinkPlantedInTheHomeIsNotFollowed(t *testing.T) {
	r, _ := realHost(t)
	ctx := context.Background()
	r.Apply(ctx, []*agentv1.Assignment{assign("e-1", "perin", keyA1)})
	target := filepath.Join(t.TempDir(), "root-owned")
	if err := os.WriteFile(target, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := "/home/perin/.ssh/authorized_keys"
	mustRemove(t, keys)
	mustSymlink(t, target, keys)

	st := r.Apply(ctx, []*agentv1.Assignment{assign("e-1", "perin", keyA2)})
	if got, want := outcome(st), []string{"e-1=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	if data, _ := os.ReadFile(target); string(data) != "precious\n" {
		t.Errorf("the symlink's target now holds %q", data)
	}
	if st := lstat(t, target); st.Uid != 0 || st.Mode&0o7777 != 0o600 {
		t.Errorf("the symlink's target was chowned or chmodded: %d %o", st.Uid, st.Mode&0o7777)
	}
	realHostKeys(t, realAccount(t, "perin"), keysContent(keyA2))
}

func TestPrivilegedRemoveHomesDeletesTheAccount(t *testing.T) {
	rec := &recorder{}
	sshd, systemctl := softCommands(t)
	r := newReconciler(t, Config{Host: softHost(rec, sshd, systemctl), RemoveHomes: true, Now: func() time.Time { return testNow }})
	ctx := context.Background()
	r.Apply(ctx, []*agentv1.Assignment{assign("f-1", "pfrank", keyA1)})

	st := r.Apply(ctx, nil)
	if got, want := outcome(st), []string{"f-1=REMOVED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q (errors %q)", got, want, st.GetErrors())
	}
	if realAccount(t, "pfrank") != nil {
		t.Error("pfrank still exists")
	}
	if _, err := os.Stat("/home/pfrank"); !os.IsNotExist(err) {
		t.Errorf("/home/pfrank: %v, want it gone", err)
	}
}

// TestPrivilegedSoftEnforcementWritesTheSshdDropIn runs soft enforcement with
// the real useradd into the namespace's /etc/ssh/sshd_config.d. With
// openssh-server installed, the real `sshd -T -C user=...` must print the
// SetEnv for the user; without it (the test does not install it) a stand-in
// sshd reads the drop-in back and the test checks the file itself. systemctl
// is always a stand-in: the host's sshd must not be reloaded by a test.
func TestPrivilegedSoftEnforcementWritesTheSshdDropIn(t *testing.T) {
	const dir = "/etc/ssh/sshd_config.d"
	sshd, systemctl := softCommands(t)
	if real, err := exec.LookPath("sshd"); err == nil && real == sshd {
		t.Logf("checking with the real %s", sshd)
	} else {
		t.Logf("openssh-server is not installed: sshd -T is a stand-in, the drop-in's content is checked")
	}
	rec := &recorder{}
	r := newReconciler(t, Config{Host: softHost(rec, sshd, systemctl), Now: func() time.Time { return testNow }})
	ctx := context.Background()
	const gpuA, gpuB = "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02", "GPU-11111111-2222-3333-4444-555555555555"
	a := assign("s-1", "psoft", keyA1)
	a.Gpus = []*agentv1.AssignedGpu{{Index: 2, Uuid: gpuB}, {Index: 0, Uuid: gpuA}}

	st := r.Apply(ctx, []*agentv1.Assignment{a})
	if got, want := outcome(st), []string{"s-1=APPLIED"}; !slices.Equal(got, want) {
		t.Fatalf("outcome = %q, want %q (errors %q)", got, want, st.GetErrors())
	}
	path := filepath.Join(dir, "10-gpulab-soft-psoft.conf")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Match User psoft\n\tSetEnv CUDA_VISIBLE_DEVICES=" + gpuA + "," + gpuB + "\nMatch all\n"; !strings.HasSuffix(string(data), want) {
		t.Errorf("%s =\n%s\nwant it to end with\n%s", path, data, want)
	}
	if st := stat(t, path); st.Uid != 0 || st.Mode&0o7777 != 0o644 {
		t.Errorf("%s owner %d mode %o, want root and 0644", path, st.Uid, st.Mode&0o7777)
	}
	out, err := exec.Command(sshd, "-T", "-C", "user=psoft,host=localhost,addr=127.0.0.1,laddr=127.0.0.1,lport=22").Output()
	if err != nil || !strings.Contains(string(out), "setenv CUDA_VISIBLE_DEVICES="+gpuA+","+gpuB+"\n") {
		t.Errorf("sshd -T for psoft: %v, want the SetEnv in:\n%s", err, out)
	}
	realHostKeys(t, realAccount(t, "psoft"), keysContent(keyA1))
	rec.take()
	r.Apply(ctx, []*agentv1.Assignment{a})
	if c := rec.take(); len(c) != 0 {
		t.Errorf("second Apply ran %q", c)
	}

	st = r.Apply(ctx, nil)
	if got, want := outcome(st), []string{"s-1=REMOVED"}; !slices.Equal(got, want) {
		t.Errorf("outcome after revoking = %q, want %q (errors %q)", got, want, st.GetErrors())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s: %v, want it removed", path, err)
	}
	if !realAccount(t, "psoft").locked() {
		t.Error("psoft is not locked")
	}
}

// The attack: useradd makes a home of mode 0755 where login.defs says
// UMASK 022 (Debian's default), so every other tenant of the node could
// read a colleague's code, data and shell history.
func TestPrivilegedAColleagueCannotReadAnotherTenantsHome(t *testing.T) {
	r, _ := realHost(t)
	ctx := context.Background()
	st := r.Apply(ctx, []*agentv1.Assignment{assign("h-1", "phana", keyA1), assign("h-2", "pivan", keyC1)})
	if got, want := outcome(st), []string{"h-1=APPLIED", "h-2=APPLIED"}; !slices.Equal(got, want) {
		t.Fatalf("outcome = %q, want %q (errors %q)", got, want, st.GetErrors())
	}
	hana, ivan := realAccount(t, "phana"), realAccount(t, "pivan")
	if mode := stat(t, "/home/phana").Mode & 0o7777; mode != 0o700 {
		t.Errorf("/home/phana has mode %o, want 0700", mode)
	}
	mustWrite(t, "/home/phana/notes.txt", "unpublished results\n", 0o644)
	if err := os.Chown("/home/phana/notes.txt", hana.uid, hana.gid); err != nil {
		t.Fatal(err)
	}
	cat := exec.Command("cat", "/home/phana/notes.txt")
	cat.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(ivan.uid), Gid: uint32(ivan.gid)}}
	if out, err := cat.CombinedOutput(); err == nil {
		t.Errorf("pivan read phana's file: %q", out)
	}
}
