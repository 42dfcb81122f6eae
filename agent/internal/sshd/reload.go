package sshd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// How sshd is reloaded, in the order Server tries them once, on the first
// reload: the systemd unit when systemd runs the host, else the pid in
// sshd's PID file. The first that works is kept for the agent's life and
// logged; when none does, the reload (and so the change that needed it)
// fails with why each did not.

// systemdRunDir exists only on a host booted with systemd (sd_booted(3)).
const systemdRunDir = "/run/systemd/system"

// sshdUnits are the systemd unit names of OpenSSH's server: Debian and
// Ubuntu's, then RHEL's and most others'.
var sshdUnits = []string{"ssh.service", "sshd.service"}

// defaultPIDFiles are where sshd writes its pid unless its PidFile says
// otherwise: OpenSSH's default, and the same through the /var/run of older
// hosts.
var defaultPIDFiles = []string{"/run/sshd.pid", "/var/run/sshd.pid"}

// reloader makes the running sshd read its configuration again.
type reloader interface {
	reload(ctx context.Context, s *Server) error
	// String says how, for the log.
	String() string
}

// unitReloader reloads sshd through its systemd unit. try-: it leaves sshd
// alone when it is not running, and the next start reads the files.
type unitReloader struct{ unit string }

func (u unitReloader) reload(ctx context.Context, s *Server) error {
	if _, err := s.run(ctx, s.host.Commands.Systemctl, "try-reload-or-restart", u.unit); err != nil {
		return fmt.Errorf("reload sshd (%s): %w", u.unit, err)
	}
	return nil
}

func (u unitReloader) String() string {
	return "through systemd (systemctl try-reload-or-restart " + u.unit + ")"
}

// pidFileReloader sends SIGHUP to the pid in sshd's PID file, read anew on
// every reload (sshd may have been restarted meanwhile), and only when that
// pid is a running sshd: a stale file must not signal another process.
// sshd re-executes itself on SIGHUP, keeping its pid and listening socket.
type pidFileReloader struct{ path string }

func (p pidFileReloader) reload(_ context.Context, s *Server) error {
	pid, err := p.sshdPID(s)
	if err != nil {
		return fmt.Errorf("reload sshd: %w", err)
	}
	if err := s.host.Kill(pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload sshd: SIGHUP to pid %d (from %s): %w", pid, p.path, err)
	}
	return nil
}

func (p pidFileReloader) String() string { return "by SIGHUP to the pid in " + p.path }

// sshdPID is the pid in the file if that process is an sshd.
func (p pidFileReloader) sshdPID(s *Server) (int, error) {
	data, err := os.ReadFile(s.host.Path(p.path))
	if err != nil {
		return 0, fmt.Errorf("no sshd PID file at %s (%w)", p.path, unwrapPath(err))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("%s holds %.20q, not an sshd's pid", p.path, strings.TrimSpace(string(data)))
	}
	comm, err := os.ReadFile(s.host.Path("/proc/" + strconv.Itoa(pid) + "/comm"))
	if err != nil {
		return 0, fmt.Errorf("%s names pid %d, which is not running", p.path, pid)
	}
	if name := strings.TrimSpace(string(comm)); name != "sshd" {
		return 0, fmt.Errorf("%s names pid %d, which is %q, not sshd", p.path, pid, name)
	}
	return pid, nil
}

// unwrapPath drops the path from a *PathError, which the message names
// already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// reload makes the running sshd read its configuration again, finding out
// how on the first call that can. effective is `sshd -T`'s output, whose
// pidfile line names sshd's PID file.
func (s *Server) reload(ctx context.Context, effective []byte) error {
	if s.reloader == nil {
		r, err := s.detect(ctx, effective)
		if err != nil {
			return err
		}
		s.reloader = r
		s.log.Info("will reload sshd " + r.String())
	}
	return s.reloader.reload(ctx, s)
}

// detect finds how this host's sshd is reloaded, or says why nothing works.
func (s *Server) detect(ctx context.Context, effective []byte) (reloader, error) {
	var why []string
	if fi, err := os.Stat(s.host.Path(systemdRunDir)); err != nil || !fi.IsDir() {
		why = append(why, "systemd does not run this host (no "+systemdRunDir+")")
	} else {
		for _, u := range sshdUnits {
			out, err := s.run(ctx, s.host.Commands.Systemctl, "show", "--property=LoadState", "--value", u)
			if err != nil {
				why = append(why, fmt.Sprintf("find the sshd systemd unit: %v", err))
				break
			}
			if strings.TrimSpace(string(out)) == "loaded" {
				return unitReloader{u}, nil
			}
		}
		if len(why) == 0 {
			why = append(why, "neither "+strings.Join(sshdUnits, " nor ")+" is a loaded systemd unit on this host")
		}
	}
	for _, path := range pidFiles(effective) {
		p := pidFileReloader{path}
		if _, err := p.sshdPID(s); err != nil {
			why = append(why, err.Error())
			continue
		}
		return p, nil
	}
	return nil, fmt.Errorf("reload sshd: no way to reload it on this host: %s; run sshd under systemd (ssh.service or sshd.service) or with a PidFile naming a running sshd",
		strings.Join(why, "; "))
}

// pidFiles are the PID files to look at: the one `sshd -T` names (PidFile;
// "none" names none), then the defaults.
func pidFiles(effective []byte) []string {
	var out []string
	for line := range strings.Lines(string(effective)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "pidfile "); ok && v != "none" && strings.HasPrefix(v, "/") {
			out = append(out, v)
		}
	}
	for _, p := range defaultPIDFiles {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
