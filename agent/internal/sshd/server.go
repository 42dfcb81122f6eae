package sshd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/gpulab/gpulab/agent/internal/atomicfile"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// DropInDir is where sshd reads drop-ins, as the host sees it.
const DropInDir = "/etc/ssh/sshd_config.d"

// Server is the host's OpenSSH server as the agent changes it: drop-in files
// written, checked with `sshd -T` and put back when sshd refuses them, and
// the running sshd reloaded. One Server serves every mode's drop-ins, so that
// a reload (which reads them all) is one host-wide fact. It is safe for
// concurrent use; one change, check and reload runs at a time.
type Server struct {
	host hostexec.Host
	log  *slog.Logger

	mu sync.Mutex
	// reloader is how this host's sshd is reloaded, detected by the first
	// reload that finds one (see reload.go).
	reloader reloader
	// reloadPending: a drop-in changed and sshd has not been reloaded since
	// (a failed reload, or an agent restarted after one), so that a write
	// finding the file already right still reloads.
	reloadPending bool
}

// NewServer returns the Server of h (its defaults filled in). It logs to
// log (nil: nowhere) how it reloads sshd, once it has found out.
func NewServer(h hostexec.Host, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Pending from the start: an earlier run may have written a drop-in
	// and died before its reload. One reload per agent start is harmless.
	return &Server{host: h.WithDefaults(), log: log, reloadPending: true}
}

// Dir is the drop-in directory under the host's root.
func (s *Server) Dir() string { return s.host.Path(DropInDir) }

// Change is the new content of one drop-in file and what sshd must then
// apply.
type Change struct {
	// Name is the file's name in DropInDir; it must end in .conf.
	Name string
	// TmpPattern names the temporary file (os.CreateTemp's pattern); it must
	// not end in .conf, or sshd's Include glob would read a half-written file.
	TmpPattern string
	// Content is the file's new content; nil removes the file.
	Content []byte
	// User is the account whose effective configuration `sshd -T -C` checks.
	User string
	// WantSetEnv, when set, is a "NAME=value" that sshd must apply to User's
	// sessions after the change (sshd prints it as "setenv NAME=value").
	WantSetEnv string
	// Who names the writer (the enforcement mode) in errors.
	Who string
}

// Write makes c the host's: the file written atomically (temporary file,
// fsync, rename) or removed, then the whole configuration checked with
// `sshd -T` (with c.WantSetEnv required for c.User) and sshd reloaded. When
// sshd refuses or ignores the change, the previous file is put back and
// sshd is not reloaded, so that a broken configuration never reaches the
// running sshd (on RHEL the reload is a bare SIGHUP, and sshd exits on a
// configuration it cannot parse). Unchanged content runs nothing unless a
// reload is pending.
func (s *Server) Write(ctx context.Context, c Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := s.Dir()
	path := filepath.Join(dir, c.Name)
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read sshd drop-in %s: %w", path, err)
	}
	existed := err == nil
	want := c.Content
	if (want == nil && !existed) || (want != nil && existed && bytes.Equal(old, want)) {
		if want != nil && s.reloadPending {
			return s.checkAndReload(ctx, c.User, "")
		}
		return nil
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("sshd drop-in directory %s: %w (%s enforcement needs an sshd that includes %s/*.conf)", dir, err, c.Who, DropInDir)
	}
	if want == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove sshd drop-in %s: %w", path, err)
		}
		if err := atomicfile.SyncDir(dir); err != nil {
			return err
		}
	} else if err := atomicfile.Write(dir, c.Name, c.TmpPattern, want, 0o644); err != nil {
		return fmt.Errorf("sshd drop-in for %s: %w", c.User, err)
	}
	s.reloadPending = true
	wantEnv := ""
	if want != nil {
		wantEnv = c.WantSetEnv
	}
	if err := s.checkAndReload(ctx, c.User, wantEnv); err != nil {
		// Put the old file back so that the next reload, by anyone, does
		// not read a configuration sshd refused or ignores.
		if rerr := restore(dir, c.Name, c.TmpPattern, old, existed); rerr != nil {
			return fmt.Errorf("%w; restoring the previous drop-in also failed: %w", err, rerr)
		}
		return err
	}
	return nil
}

func restore(dir, name, tmpPattern string, old []byte, existed bool) error {
	if existed {
		return atomicfile.Write(dir, name, tmpPattern, old, 0o644)
	}
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(dir)
}

// checkAndReload asks sshd for the effective configuration of user's
// sessions, which also fails on any syntax error in the whole configuration,
// and with wantEnv set requires the SetEnv line; then reloads sshd.
func (s *Server) checkAndReload(ctx context.Context, user, wantEnv string) error {
	// laddr and lport are given too, because older sshd versions refuse -C
	// without every connection field their Match blocks might test.
	spec := "user=" + user + ",host=localhost,addr=127.0.0.1,laddr=127.0.0.1,lport=22"
	out, err := s.run(ctx, s.host.Commands.Sshd, "-T", "-C", spec)
	if err != nil {
		return fmt.Errorf("check the sshd configuration with sshd -T: %w", err)
	}
	if wantEnv != "" {
		var got []string
		for line := range strings.Lines(string(out)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "setenv "); ok {
				got = append(got, v)
			}
		}
		if !slices.Contains(got, wantEnv) {
			return fmt.Errorf("sshd does not apply the gpulab drop-in to user %s (effective setenv %q): it needs OpenSSH 7.8 or later, an sshd_config that includes %s/*.conf, and no earlier Match block setting SetEnv for this user",
				user, got, DropInDir)
		}
	}
	if err := s.reload(ctx, out); err != nil {
		return err
	}
	s.reloadPending = false
	return nil
}

// run runs one command and folds the first line of its stderr into the
// error, where the tool says what went wrong.
func (s *Server) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	stdout, stderr, err := s.host.Runner.Run(ctx, name, args...)
	if err == nil {
		return stdout, nil
	}
	if line, _, _ := bytes.Cut(bytes.TrimSpace(stderr), []byte("\n")); len(line) > 0 {
		return stdout, fmt.Errorf("%w (%s)", err, line)
	}
	return stdout, err
}
