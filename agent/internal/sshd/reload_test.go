package sshd

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/sshd/sshdtest"
)

// fakeNode is a host under a temporary root: with or without systemd (its
// /run/systemd/system), with the systemd units in units, with processes
// whose names are in its /proc/<pid>/comm, and sshd -T printing pidfile.
// Signals are recorded, never sent.
type fakeNode struct {
	t       *testing.T
	root    string
	units   []string
	pidfile string // what sshd -T prints as its pidfile; "" prints none

	mu      sync.Mutex
	signals []string
	run     *sshdtest.Host
	logs    bytes.Buffer
}

func newFakeNode(t *testing.T, systemd bool) *fakeNode {
	t.Helper()
	n := &fakeNode{t: t, root: t.TempDir()}
	n.mkdir(DropInDir)
	if systemd {
		n.mkdir("/run/systemd/system")
	}
	n.run = &sshdtest.Host{Dir: n.path(DropInDir), Extra: n.answer}
	return n
}

func (n *fakeNode) path(p string) string { return filepath.Join(n.root, p) }

func (n *fakeNode) mkdir(p string) {
	n.t.Helper()
	if err := os.MkdirAll(n.path(p), 0o755); err != nil {
		n.t.Fatal(err)
	}
}

func (n *fakeNode) write(p, data string) {
	n.t.Helper()
	n.mkdir(filepath.Dir(p))
	if err := os.WriteFile(n.path(p), []byte(data), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

// process makes pid a running process named comm.
func (n *fakeNode) process(pid int, comm string) {
	n.write("/proc/"+strconv.Itoa(pid)+"/comm", comm+"\n")
}

func (n *fakeNode) answer(name string, args []string) ([]byte, []byte, error, bool) {
	switch {
	case name == "systemctl" && len(args) == 4 && args[0] == "show":
		if slices.Contains(n.units, args[3]) {
			return []byte("loaded\n"), nil, nil, true
		}
		return []byte("not-found\n"), nil, nil, true
	case name == "sshd":
		out, stderr, err, _ := sshdtest.Answer(n.path(DropInDir), name, args)
		if n.pidfile != "" {
			out = append(out, "pidfile "+n.pidfile+"\n"...)
		}
		return out, stderr, err, true
	}
	return nil, nil, nil, false
}

func (n *fakeNode) kill(pid int, sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.signals = append(n.signals, strconv.Itoa(pid)+" "+sig.String())
	return nil
}

func (n *fakeNode) takeSignals() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.signals
	n.signals = nil
	return s
}

func (n *fakeNode) server() *Server {
	h := hostexec.Host{Root: n.root, Runner: n.run, Kill: n.kill}
	return NewServer(h, slog.New(slog.NewTextHandler(&n.logs, nil)))
}

// change writes user's drop-in with GPUs gpus (a different content each
// call with different gpus), as a mode would.
func change(user, gpus string) Change {
	return Change{
		Name: FileName("soft", user), TmpPattern: ".gpulab-soft-*.tmp", User: user, Who: "soft",
		Content:    []byte("Match User " + user + "\n\tSetEnv CUDA_VISIBLE_DEVICES=" + gpus + "\nMatch all\n"),
		WantSetEnv: "CUDA_VISIBLE_DEVICES=" + gpus,
	}
}

func TestWithSystemdSshdIsReloadedThroughItsUnitFoundOnce(t *testing.T) {
	for _, unit := range []string{"ssh.service", "sshd.service"} {
		t.Run(unit, func(t *testing.T) {
			n := newFakeNode(t, true)
			n.units = []string{unit}
			// A PID file is there too: systemd's unit comes first.
			n.write("/run/sshd.pid", "4242\n")
			n.process(4242, "sshd")
			s := n.server()
			ctx := context.Background()
			if err := s.Write(ctx, change("alice", "GPU-a")); err != nil {
				t.Fatal(err)
			}
			if err := s.Write(ctx, change("alice", "GPU-b")); err != nil {
				t.Fatal(err)
			}
			var shows, reloads int
			for _, c := range n.run.Take() {
				switch {
				case c[0] == "systemctl" && c[1] == "show":
					shows++
				case slices.Equal(c, []string{"systemctl", "try-reload-or-restart", unit}):
					reloads++
				}
			}
			// ssh.service is asked first; sshd.service after it.
			if wantShows := slices.Index(sshdUnits, unit) + 1; shows != wantShows || reloads != 2 {
				t.Errorf("ran systemctl show %d times and reloaded %s %d times; want %d and 2", shows, unit, reloads, wantShows)
			}
			if got := n.takeSignals(); len(got) != 0 {
				t.Errorf("signalled %q, want nothing (systemd reloads)", got)
			}
			if !strings.Contains(n.logs.String(), "will reload sshd through systemd (systemctl try-reload-or-restart "+unit+")") {
				t.Errorf("log = %q, want it to say how sshd is reloaded", n.logs.String())
			}
		})
	}
}

func TestWithoutSystemdSshdIsReloadedBySIGHUPToThePidInItsPIDFile(t *testing.T) {
	n := newFakeNode(t, false)
	n.write("/run/sshd.pid", "4242\n")
	n.process(4242, "sshd")
	s := n.server()
	ctx := context.Background()
	if err := s.Write(ctx, change("alice", "GPU-a")); err != nil {
		t.Fatal(err)
	}
	if got, want := n.takeSignals(), []string{"4242 hangup"}; !slices.Equal(got, want) {
		t.Errorf("signals = %q, want %q", got, want)
	}
	for _, c := range n.run.Take() {
		if c[0] == "systemctl" {
			t.Errorf("ran %q on a host without systemd", c)
		}
	}
	if !strings.Contains(n.logs.String(), "will reload sshd by SIGHUP to the pid in /run/sshd.pid") {
		t.Errorf("log = %q, want it to say how sshd is reloaded", n.logs.String())
	}
	// sshd restarted meanwhile: the file is read again on every reload.
	n.write("/run/sshd.pid", "5151\n")
	n.process(5151, "sshd")
	if err := s.Write(ctx, change("alice", "GPU-b")); err != nil {
		t.Fatal(err)
	}
	if got, want := n.takeSignals(), []string{"5151 hangup"}; !slices.Equal(got, want) {
		t.Errorf("signals after sshd's restart = %q, want %q", got, want)
	}
	if got := strings.Count(n.logs.String(), "will reload sshd"); got != 1 {
		t.Errorf("logged the method %d times, want once", got)
	}
}

func TestThePIDFileSshdNamesIsUsedAndSystemdWithoutAnSshdUnitFallsBackToIt(t *testing.T) {
	n := newFakeNode(t, true) // systemd runs, but not sshd
	n.pidfile = "/var/run/gpulab-sshd/sshd.pid"
	n.write("/var/run/gpulab-sshd/sshd.pid", "777\n")
	n.process(777, "sshd")
	if err := n.server().Write(context.Background(), change("alice", "GPU-a")); err != nil {
		t.Fatal(err)
	}
	if got, want := n.takeSignals(), []string{"777 hangup"}; !slices.Equal(got, want) {
		t.Errorf("signals = %q, want %q", got, want)
	}
	if !strings.Contains(n.logs.String(), "by SIGHUP to the pid in /var/run/gpulab-sshd/sshd.pid") {
		t.Errorf("log = %q", n.logs.String())
	}
}

func TestWithNoWayToReloadSshdTheChangeFailsSayingWhyAndNothingIsSignalled(t *testing.T) {
	n := newFakeNode(t, false)
	// A stale PID file naming another process.
	n.write("/run/sshd.pid", "4242\n")
	n.process(4242, "bash")
	s := n.server()
	ctx := context.Background()
	err := s.Write(ctx, change("alice", "GPU-a"))
	for _, want := range []string{
		"reload sshd: no way to reload it on this host",
		"systemd does not run this host (no /run/systemd/system)",
		`/run/sshd.pid names pid 4242, which is "bash", not sshd`,
		"no sshd PID file at /var/run/sshd.pid",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Write error = %v, want it to say %q", err, want)
		}
	}
	if got := n.takeSignals(); len(got) != 0 {
		t.Errorf("signalled %q", got)
	}
	// The refused change is not left for a later reload to pick up.
	if _, err := os.Stat(n.path(filepath.Join(DropInDir, FileName("soft", "alice")))); !os.IsNotExist(err) {
		t.Errorf("the drop-in was left in place (%v)", err)
	}
	// Once sshd runs, the next change finds it.
	n.process(4242, "sshd")
	if err := s.Write(ctx, change("alice", "GPU-a")); err != nil {
		t.Fatal(err)
	}
	if got, want := n.takeSignals(), []string{"4242 hangup"}; !slices.Equal(got, want) {
		t.Errorf("signals = %q, want %q", got, want)
	}
}

func TestAnUnreadableOrEmptyPIDFileIsNoSshd(t *testing.T) {
	for name, content := range map[string]string{"empty": "", "garbage": "sshd\n", "init": "1\n"} {
		t.Run(name, func(t *testing.T) {
			n := newFakeNode(t, false)
			n.write("/run/sshd.pid", content)
			n.process(1, "sshd")
			err := n.server().Write(context.Background(), change("alice", "GPU-a"))
			if err == nil || !strings.Contains(err.Error(), "not an sshd's pid") {
				t.Errorf("Write error = %v", err)
			}
			if got := n.takeSignals(); len(got) != 0 {
				t.Errorf("signalled %q", got)
			}
		})
	}
}
