//go:build privileged

package reconcile

// TestMain and the helpers of privileged_test.go: the throwaway host in a
// private mount namespace, and the reconciler on the real commands.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// privUIDMin moves the namespace's new accounts far above any uid the host
// uses, because /proc is shared with the host: pkill -u must never match a
// real user's processes.
const privUIDMin = 200000

func TestMain(m *testing.M) {
	tmp, err := enterThrowawayHost()
	if err != nil {
		fmt.Fprintln(os.Stderr, "privileged tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	// The mounts end with the namespace, but the copies live in the host's
	// /tmp: unmount them and remove the copy of /etc (it holds shadow).
	for _, target := range throwawayTargets {
		_ = syscall.Unmount(target, syscall.MNT_DETACH)
	}
	if err := os.RemoveAll(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "privileged tests: remove", tmp, err)
	}
	os.Exit(code)
}

// throwawayTargets are the host directories the tests may change.
var throwawayTargets = []string{"/etc", "/home", "/var/log", "/var/mail"}

// enterThrowawayHost bind-mounts private copies over throwawayTargets and
// returns the directory holding them.
func enterThrowawayHost() (string, error) {
	if os.Geteuid() != 0 {
		return "", errors.New("must run as root (make test-privileged)")
	}
	// unshare execs this binary in the new namespace, so its parent (make's
	// shell) is still in the old one. Comparing with PID 1 would not do: in a
	// container or sandbox PID 1 may itself live in another namespace.
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	parent, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()))
	if err1 != nil || err2 != nil || self == parent {
		return "", errors.New("must run in a mount namespace of its own: unshare --mount --propagation private (make test-privileged)")
	}
	// Belt and braces: nothing mounted from here may propagate to the host.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return "", fmt.Errorf("make / private: %w", err)
	}
	tmp, err := os.MkdirTemp("", "gpulab-privileged-")
	if err != nil {
		return "", err
	}
	if out, err := exec.Command("cp", "-a", "/etc", filepath.Join(tmp, "etc")).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copy /etc: %v: %s", err, out)
	}
	defs := filepath.Join(tmp, "etc/login.defs")
	data, err := os.ReadFile(defs)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) > 0 && slices.Contains([]string{"UID_MIN", "UID_MAX", "GID_MIN", "GID_MAX"}, f[0]) {
			continue
		}
		b.WriteString(line)
	}
	fmt.Fprintf(&b, "\nUID_MIN %d\nUID_MAX %d\nGID_MIN %d\nGID_MAX %d\n", privUIDMin, privUIDMin+99999, privUIDMin, privUIDMin+99999)
	if err := os.WriteFile(defs, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	for _, target := range throwawayTargets {
		src := filepath.Join(tmp, strings.ReplaceAll(target[1:], "/", "-"))
		if target == "/etc" {
			src = filepath.Join(tmp, "etc")
		} else if err := os.Mkdir(src, 0o755); err != nil {
			return "", err
		}
		if _, err := os.Stat(target); os.IsNotExist(err) {
			continue
		}
		if err := syscall.Mount(src, target, "", syscall.MS_BIND, ""); err != nil {
			return "", fmt.Errorf("bind %s over %s: %w", src, target, err)
		}
	}
	return tmp, nil
}

// recorder runs commands for real and remembers them.
type recorder struct {
	mu    sync.Mutex
	calls [][]string
}

func (r *recorder) Run(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
	r.mu.Lock()
	r.calls = append(r.calls, append([]string{name}, args...))
	r.mu.Unlock()
	return hostexec.Exec{}.Run(ctx, name, args...)
}

func (r *recorder) take() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func realHost(t *testing.T) (*Reconciler, *recorder) {
	rec := &recorder{}
	sshd, systemctl := softCommands(t)
	return newReconciler(t, Config{Host: softHost(rec, sshd, systemctl), Now: func() time.Time { return testNow }}), rec
}

// softHost is the real host, its commands run by rec, with the soft
// enforcer's sshd and systemctl.
func softHost(rec *recorder, sshd, systemctl string) hostexec.Host {
	return hostexec.Host{Runner: rec, Commands: hostexec.Commands{Sshd: sshd, Systemctl: systemctl}}
}

func newReconciler(t *testing.T, cfg Config) *Reconciler {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// softCommands readies the soft enforcer's commands in the namespace and
// returns them: the real sshd when openssh-server is installed (the tests do
// not install it), else the stand-in of testdata/fakebin reading the
// namespace's /etc/ssh/sshd_config.d; systemctl is always the stand-in, so
// that no test reloads the host's sshd. The namespace gets a /run of its own
// that says systemd runs (/run/systemd/system), so that sshd is reloaded
// through the stand-in whether or not the machine runs systemd.
func softCommands(t *testing.T) (sshd, systemctl string) {
	t.Helper()
	if err := syscall.Mount("gpulab-test-run", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount a tmpfs on the namespace's /run: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount("/run", syscall.MNT_DETACH) })
	if err := os.MkdirAll("/run/systemd/system", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/etc/ssh/sshd_config.d", 0o755); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, name := range []string{"_common.sh", "sshd", "systemctl"} {
		data, err := os.ReadFile(filepath.Join("testdata/fakebin", name))
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, filepath.Join(bin, name), string(data), 0o755)
	}
	real, err := exec.LookPath("sshd")
	if err != nil {
		t.Setenv("FAKE_SSHD_CONFIG_DIR", "/etc/ssh/sshd_config.d")
		return filepath.Join(bin, "sshd"), filepath.Join(bin, "systemctl")
	}
	// sshd -T needs host keys (generated into the namespace's copy of /etc)
	// and its privilege separation directory.
	if out, err := exec.Command("ssh-keygen", "-A").CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -A: %v: %s", err, out)
	}
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) {
		if err := os.Mkdir("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove("/run/sshd") })
	}
	return real, filepath.Join(bin, "systemctl")
}

func realAccount(t *testing.T, name string) *account {
	t.Helper()
	accts, err := readAccounts("/")
	if err != nil {
		t.Fatal(err)
	}
	return accts[name]
}

func realHostKeys(t *testing.T, a *account, want string) {
	t.Helper()
	checkKeys(t, &fakeHost{t: t, root: "/"}, a, want)
}
