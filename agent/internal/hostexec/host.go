package hostexec

import (
	"path/filepath"
	"syscall"
)

// Host is the one seam through which the agent reaches the node it runs on:
// where the node's files are (Root), what runs its commands (Runner), and
// which programs those are (Commands). Every enforcement mode and the
// reconciler take a Host; tests give them one over a temporary root with a
// fake Runner. The zero value, after WithDefaults, is the real host.
type Host struct {
	// Root prefixes every host path read or written (/etc, /run, /proc,
	// /sys, /dev, /home); "" or "/" is the real host.
	Root string
	// Runner runs the commands; Exec{} when nil.
	Runner Runner
	// Commands are the programs' names or paths.
	Commands Commands
	// Kill sends sig to process pid (sshd's reload without systemd);
	// syscall.Kill when nil.
	Kill func(pid int, sig syscall.Signal) error
}

// Commands names the programs the agent runs on the host. An empty field is
// the program's bare name, found on PATH.
type Commands struct {
	Sshd, Systemctl           string
	Useradd, Usermod, Userdel string
	Pkill                     string
	NvidiaSMI                 string
	Pct                       string
}

// WithDefaults returns h with every empty field filled in: Root "/", Runner
// Exec{}, Kill syscall.Kill, each command its bare name.
func (h Host) WithDefaults() Host {
	if h.Root == "" {
		h.Root = "/"
	}
	if h.Runner == nil {
		h.Runner = Exec{}
	}
	if h.Kill == nil {
		h.Kill = syscall.Kill
	}
	c := &h.Commands
	for _, f := range []struct {
		field *string
		name  string
	}{
		{&c.Sshd, "sshd"}, {&c.Systemctl, "systemctl"},
		{&c.Useradd, "useradd"}, {&c.Usermod, "usermod"}, {&c.Userdel, "userdel"},
		{&c.Pkill, "pkill"}, {&c.NvidiaSMI, "nvidia-smi"}, {&c.Pct, "pct"},
	} {
		if *f.field == "" {
			*f.field = f.name
		}
	}
	return h
}

// Path is the host path p (absolute, as the node sees it) under Root.
func (h Host) Path(p string) string {
	root := h.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, p)
}
