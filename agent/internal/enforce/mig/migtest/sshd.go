package migtest

import (
	"errors"
	"path/filepath"

	"github.com/gpulab/gpulab/agent/internal/enforce/soft"
	"github.com/gpulab/gpulab/agent/internal/enforce/soft/softtest"
)

// sshd answers sshd and systemctl as package softtest does, for the drop-ins
// under SSHDRoot.
func (f *Fake) sshd(name string, args []string) ([]byte, []byte, error) {
	stdout, stderr, err, ok := softtest.Answer(filepath.Join(f.SSHDRoot, soft.DropInDir), name, args)
	if !ok {
		return nil, nil, errors.New("the fake does not know this command")
	}
	return stdout, stderr, err
}
