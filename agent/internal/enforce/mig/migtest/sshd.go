package migtest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/enforce/soft"
)

// sshd answers `sshd -T -C user=U,...` with the SetEnv lines of every
// `Match User U` block in the drop-ins under SSHDRoot, as the real one prints
// its effective configuration ("setenv NAME=value"), and systemctl with an
// ssh.service that is loaded and reloads.
func (f *Fake) sshd(name string, args []string) ([]byte, []byte, error) {
	switch {
	case name == "sshd" && len(args) == 3 && args[0] == "-T" && args[1] == "-C":
		user, _, _ := strings.Cut(strings.TrimPrefix(args[2], "user="), ",")
		out := "port 22\n"
		dir := filepath.Join(f.SSHDRoot, soft.DropInDir)
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, []byte(err.Error() + "\n"), errors.New("exit status 255")
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".conf") {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, []byte(err.Error() + "\n"), errors.New("exit status 255")
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
		return []byte(out), nil, nil
	case name == "systemctl" && len(args) == 4 && args[0] == "show":
		if args[3] == "ssh.service" {
			return []byte("loaded\n"), nil, nil
		}
		return []byte("not-found\n"), nil, nil
	case name == "systemctl" && len(args) == 2 && args[0] == "try-reload-or-restart":
		return nil, nil, nil
	}
	return nil, nil, errors.New("the fake does not know this command")
}
