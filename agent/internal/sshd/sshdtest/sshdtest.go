// Package sshdtest answers the commands package sshd runs, for the tests of
// every mode that composes it: `sshd -T -C user=U,...` prints the SetEnv lines of
// every `Match User U` block in the drop-ins of a directory, as the real sshd
// prints its effective configuration ("setenv NAME=value"), and systemctl
// has a loaded ssh.service that reloads. The tests' root must have
// /run/systemd/system for package sshd to reload through systemctl.
package sshdtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Answer answers name args as sshd or systemctl would on a host whose sshd
// drop-ins are in dir. handled is false for any other command.
func Answer(dir, name string, args []string) (stdout, stderr []byte, err error, handled bool) {
	switch {
	case name == "sshd" && len(args) == 3 && args[0] == "-T" && args[1] == "-C":
		user, _, _ := strings.Cut(strings.TrimPrefix(args[2], "user="), ",")
		out, err := effective(dir, user)
		if err != nil {
			return nil, []byte(err.Error() + "\n"), errors.New("exit status 255"), true
		}
		return []byte(out), nil, nil, true
	case name == "systemctl" && len(args) == 4 && args[0] == "show":
		if args[3] == "ssh.service" {
			return []byte("loaded\n"), nil, nil, true
		}
		return []byte("not-found\n"), nil, nil, true
	case name == "systemctl" && len(args) == 2 && args[0] == "try-reload-or-restart":
		return nil, nil, nil, true
	}
	return nil, nil, nil, false
}

// effective is what sshd -T prints for user: a port line and the SetEnv of
// the Match blocks naming the user, file by file in name order.
func effective(dir, user string) (string, error) {
	out := "port 22\n"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		match := false
		for line := range strings.Lines(string(data)) {
			line = strings.TrimSpace(line)
			if m, ok := strings.CutPrefix(line, "Match "); ok {
				match = m == "User "+user
			} else if v, ok := strings.CutPrefix(line, "SetEnv "); ok && match {
				out += "setenv " + v + "\n"
			}
		}
	}
	return out, nil
}

// Host is a hostexec.Runner that records every call and answers as Answer
// does for the drop-ins in Dir, after Extra (when set) had its say.
type Host struct {
	Dir   string
	Extra func(name string, args []string) (stdout, stderr []byte, err error, handled bool)

	mu    sync.Mutex
	calls [][]string
}

// Run implements hostexec.Runner; a command neither answers fails.
func (h *Host) Run(_ context.Context, name string, args ...string) ([]byte, []byte, error) {
	h.mu.Lock()
	h.calls = append(h.calls, append([]string{name}, args...))
	h.mu.Unlock()
	if h.Extra != nil {
		if stdout, stderr, err, ok := h.Extra(name, args); ok {
			return stdout, stderr, err
		}
	}
	stdout, stderr, err, ok := Answer(h.Dir, name, args)
	if !ok {
		return nil, []byte("unexpected command\n"), errors.New("exit status 1")
	}
	return stdout, stderr, err
}

// Take returns the calls so far, each as its argv, and forgets them.
func (h *Host) Take() [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}
