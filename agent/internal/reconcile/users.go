package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
)

// lockExpireDay is the shadow expire field lockArgs sets: day 1 after the
// epoch, long past, so that sshd and PAM refuse the account even for key
// login ("0" is avoided: some tools read it as "no expiry").
const lockExpireDay = "1"

// loginShell is the shell of an account the agent creates on a node; a jump
// account gets jump.Shell instead.
const loginShell = "/bin/bash"

// ensureAccount makes account name exist and unlocked, and returns it. Its
// keys are the caller's to write. firstID names the assignment in a new
// account's comment; shell is a new account's login shell.
func (r *Reconciler) ensureAccount(ctx context.Context, accts map[string]*account, name, firstID, shell string) (*account, error) {
	a, ok := accts[name]
	if ok && !a.managed() {
		return nil, fmt.Errorf("linux user %s already exists and was not created by gpulab, so it is left untouched", name)
	}
	if !ok {
		comment := markerPrefix + " (created for assignment " + firstID + ")"
		if err := r.run(ctx, r.cfg.Host.Commands.Useradd, "--create-home", "--shell", shell,
			"--comment", comment, "--user-group", name); err != nil {
			return nil, fmt.Errorf("create linux user %s: %w", name, err)
		}
		fresh, err := readAccounts(r.cfg.Host.Root)
		if err != nil {
			return nil, fmt.Errorf("read linux user %s after creating it: %w", name, err)
		}
		if a, ok = fresh[name]; !ok || !a.managed() {
			return nil, fmt.Errorf("linux user %s is not in the account list with the gpulab marker after useradd succeeded", name)
		}
		accts[name] = a
		if err := makeHomePrivate(r.homePath(a), a.uid); err != nil {
			return nil, fmt.Errorf("create linux user %s: %w", name, err)
		}
	}
	if err := r.checkManageable(a); err != nil {
		return nil, err
	}
	if a.expire != "" {
		// Undo lockArgs. --unlock only when it would leave a password
		// field: useradd's "!" alone must stay (unlocking it would make a
		// password-less account, which usermod refuses with a warning).
		args := []string{"--expiredate", ""}
		if strings.HasPrefix(a.password, "!") && len(a.password) > 1 {
			args = append([]string{"--unlock"}, args...)
		}
		if err := r.run(ctx, r.cfg.Host.Commands.Usermod, append(args, name)...); err != nil {
			return nil, fmt.Errorf("unlock linux user %s: %w", name, err)
		}
	}
	return a, nil
}

// homeMode is the mode of a home the agent creates: tenants of one node are
// not each other's audience. useradd would give 0755 where login.defs says
// UMASK 022 (Debian's and RHEL's default), and HOME_MODE is not in every
// shadow version the agent meets, so the agent sets the mode itself.
const homeMode = 0o700

// makeHomePrivate gives the home useradd just made mode homeMode, through a
// descriptor opened without following a symlink. A home that useradd found
// already there, owned by someone else, was not made by the agent and is
// left as it is.
func makeHomePrivate(home string, uid int) error {
	fd, err := syscall.Open(home, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open home %s: %w", home, err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat home %s: %w", home, err)
	}
	if int(st.Uid) != uid || st.Mode&0o7777 == homeMode {
		return nil
	}
	if err := syscall.Fchmod(fd, homeMode); err != nil {
		return fmt.Errorf("make home %s private (mode %o): %w", home, homeMode, err)
	}
	return nil
}

// removeUser takes away a managed account's access: lock, kill its
// processes, empty its keys and, with RemoveHomes, delete it. It goes on
// after a failed step so that as much access as possible is gone, and
// returns every failure.
func (r *Reconciler) removeUser(ctx context.Context, a *account) error {
	var errs []error
	if !a.locked() {
		// Lock first, so that no new session starts while the rest runs.
		if err := r.run(ctx, r.cfg.Host.Commands.Usermod, "--lock", "--expiredate", lockExpireDay, a.name); err != nil {
			errs = append(errs, fmt.Errorf("lock linux user %s: %w", a.name, err))
		}
	}
	running, err := hasProcesses(r.cfg.Host.Root, a.uid)
	if err != nil {
		errs = append(errs, fmt.Errorf("look for processes of %s: %w", a.name, err))
	}
	if running {
		if err := r.run(ctx, r.cfg.Host.Commands.Pkill, "-KILL", "-u", a.name); err != nil && !noProcessMatched(err) {
			errs = append(errs, fmt.Errorf("kill processes of %s: %w", a.name, err))
		}
	}
	if _, err := syncAuthorizedKeys(r.homePath(a), a.uid, a.gid, nil, false); err != nil {
		errs = append(errs, fmt.Errorf("empty authorized_keys of %s: %w", a.name, err))
	}
	if r.cfg.RemoveHomes && len(errs) == 0 {
		if err := r.run(ctx, r.cfg.Host.Commands.Userdel, "--remove", a.name); err != nil {
			errs = append(errs, fmt.Errorf("delete linux user %s: %w", a.name, err))
		}
	}
	return joinSentence(errs)
}

// noProcessMatched is pkill's exit status 1: nothing matched, e.g. the
// processes ended between the /proc scan and pkill.
func noProcessMatched(err error) bool {
	var exitErr *exec.ExitError
	return errors.As(err, &exitErr) && exitErr.ExitCode() == 1
}

// run runs one command and folds the first line of its stderr into the
// error, where the tool says what went wrong.
func (r *Reconciler) run(ctx context.Context, name string, args ...string) error {
	_, stderr, err := r.cfg.Host.Runner.Run(ctx, name, args...)
	if err == nil {
		return nil
	}
	if line, _, _ := bytes.Cut(bytes.TrimSpace(stderr), []byte("\n")); len(line) > 0 {
		return fmt.Errorf("%w (%s)", err, line)
	}
	return err
}

// joinSentence joins errors with "; " so that the report stays one line.
func joinSentence(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}
