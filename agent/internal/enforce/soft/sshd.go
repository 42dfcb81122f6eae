package soft

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
)

// checkAndReload asks sshd for the effective configuration of user's
// sessions, which also fails on any syntax error in the whole configuration,
// and with wantEnv set requires the SetEnv line; then reloads sshd.
func (e *Enforcer) checkAndReload(ctx context.Context, user, wantEnv string) error {
	// laddr and lport are given too, because older sshd versions refuse -C
	// without every connection field their Match blocks might test.
	spec := "user=" + user + ",host=localhost,addr=127.0.0.1,laddr=127.0.0.1,lport=22"
	out, err := e.run(ctx, e.cfg.Sshd, "-T", "-C", spec)
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
			return fmt.Errorf("sshd does not apply the gpulab drop-in to user %s (effective setenv %q): it needs OpenSSH 7.8 or later, an sshd_config that includes /%s/*.conf, and no earlier Match block setting SetEnv for this user",
				user, got, DropInDir)
		}
	}
	if err := e.reload(ctx); err != nil {
		return err
	}
	e.reloadPending = false
	return nil
}

// sshdUnits are the systemd unit names of OpenSSH's server: Debian and
// Ubuntu's, then RHEL's and most others'.
var sshdUnits = []string{"ssh.service", "sshd.service"}

// reload makes the running sshd read its configuration again. It leaves
// sshd alone when it is not running (try-): the next start reads the files.
func (e *Enforcer) reload(ctx context.Context) error {
	if e.unit == "" {
		for _, u := range sshdUnits {
			out, err := e.run(ctx, e.cfg.Systemctl, "show", "--property=LoadState", "--value", u)
			if err != nil {
				return fmt.Errorf("find the sshd systemd unit: %w", err)
			}
			if strings.TrimSpace(string(out)) == "loaded" {
				e.unit = u
				break
			}
		}
		if e.unit == "" {
			return fmt.Errorf("reload sshd: neither %s is a loaded systemd unit on this host", strings.Join(sshdUnits, " nor "))
		}
	}
	if _, err := e.run(ctx, e.cfg.Systemctl, "try-reload-or-restart", e.unit); err != nil {
		return fmt.Errorf("reload sshd (%s): %w", e.unit, err)
	}
	return nil
}

// run runs one command and folds the first line of its stderr into the
// error, where the tool says what went wrong.
func (e *Enforcer) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	stdout, stderr, err := e.cfg.Runner.Run(ctx, name, args...)
	if err == nil {
		return stdout, nil
	}
	if line, _, _ := bytes.Cut(bytes.TrimSpace(stderr), []byte("\n")); len(line) > 0 {
		return stdout, fmt.Errorf("%w (%s)", err, line)
	}
	return stdout, err
}
