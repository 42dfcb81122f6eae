package migtest

import (
	"errors"
	"path/filepath"

	"github.com/gpulab/gpulab/agent/internal/sshd"
	"github.com/gpulab/gpulab/agent/internal/sshd/sshdtest"
)

// sshd answers sshd and systemctl as package sshdtest does, for the drop-ins
// under SSHDRoot.
func (f *Fake) sshd(name string, args []string) ([]byte, []byte, error) {
	stdout, stderr, err, ok := sshdtest.Answer(filepath.Join(f.SSHDRoot, sshd.DropInDir), name, args)
	if !ok {
		return nil, nil, errors.New("the fake does not know this command")
	}
	return stdout, stderr, err
}
