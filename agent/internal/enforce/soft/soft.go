package soft

import (
	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/sshd"
)

// Mode is this enforcement mode's name, also its drop-ins'
// (10-gpulab-soft-<user>.conf).
const Mode = sshd.ModeSoft

// Enforcer is the soft mode's enforce.Enforcer: the user's sshd drop-in and
// nothing else. It is safe for concurrent use.
type Enforcer struct {
	*sshd.DropIns
}

var _ enforce.Enforcer = (*Enforcer)(nil)

// New returns the soft Enforcer of host h, whose drop-ins srv checks and
// reloads; nil srv is a Server of its own over h.
func New(h hostexec.Host, srv *sshd.Server) *Enforcer {
	if srv == nil {
		srv = sshd.NewServer(h, nil)
	}
	return &Enforcer{sshd.NewDropIns(srv, sshd.DropInConfig{Mode: Mode})}
}
