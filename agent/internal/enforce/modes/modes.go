// Package modes is the one factory of this node's enforcement modes: given
// the host seam and the operator's settings, it detects what kind of node
// this is and returns the Registry of every mode of the Environment's
// enforcement_mode, each enforced by its package over that one host, their
// sshd drop-ins checked and reloaded by one sshd.Server.
//
// Detection: a node whose Proxmox VE API configuration exists (Options.
// ProxmoxConfig, else proxmox.DefaultConfigPath under the host's root) is a
// Proxmox host, and its container mode is an LXC per assignment (package
// proxmox); any other node's container mode is a container per assignment
// on its Docker-compatible engine (package container). soft, cgroup and mig
// are the same on both.
package modes

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/cgroup"
	"github.com/gpulab/gpulab/agent/internal/enforce/container"
	"github.com/gpulab/gpulab/agent/internal/enforce/mig"
	"github.com/gpulab/gpulab/agent/internal/enforce/proxmox"
	"github.com/gpulab/gpulab/agent/internal/enforce/soft"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/sshd"
)

// Options are the host and the operator's settings of the modes. The zero
// value is the real host with every default.
type Options struct {
	// Host is the node every mode changes.
	Host hostexec.Host
	// StateDir is where mig and container keep their state; the host's
	// /var/lib/gpulab when empty.
	StateDir string
	// ContainerSocket and ContainerImage configure the engine-backed
	// container mode (see package container for the defaults).
	ContainerSocket, ContainerImage string
	// ProxmoxConfig names the Proxmox VE API configuration; when set, the
	// file must exist. When empty, proxmox.DefaultConfigPath under the
	// host's root is used if it exists.
	ProxmoxConfig string
	// Log is where the modes say what they found out about the host (how
	// sshd is reloaded); nil: nowhere.
	Log *slog.Logger
}

// New detects the kind of node and returns its Registry. It fails only on a
// Proxmox configuration that exists (or was named) but cannot be used.
func New(o Options) (*enforce.Registry, error) {
	h := o.Host.WithDefaults()
	if o.StateDir == "" {
		o.StateDir = h.Path("/var/lib/gpulab")
	}
	srv := sshd.NewServer(h, o.Log)
	ctr, err := proxmoxMode(h, o.ProxmoxConfig)
	if err != nil {
		return nil, err
	}
	if ctr == nil {
		ctr = container.New(h, srv, container.Config{
			Socket: o.ContainerSocket, Image: o.ContainerImage,
			StateDir: filepath.Join(o.StateDir, "containers"),
		})
	}
	reg := enforce.NewRegistry()
	// Register cannot fail here: the names are distinct and non-empty.
	_ = reg.Register(soft.Mode, soft.New(h, srv))
	_ = reg.Register(cgroup.Mode, cgroup.New(h, srv))
	_ = reg.Register(mig.Mode, mig.New(h, srv, mig.Config{StateDir: o.StateDir}))
	_ = reg.Register(container.Mode, ctr)
	return reg, nil
}

// proxmoxMode is the Proxmox VE container mode when this node has its
// configuration, else nil.
func proxmoxMode(h hostexec.Host, path string) (enforce.Enforcer, error) {
	explicit := path != ""
	if !explicit {
		path = h.Path(proxmox.DefaultConfigPath)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	}
	cfg, err := proxmox.LoadConfig(path)
	if err != nil {
		return nil, fmt.Errorf("proxmox configuration (%s): %w", path, err)
	}
	cfg.DeviceFor = proxmox.DeviceFromProc(h.Root)
	e, err := proxmox.New(h, cfg)
	if err != nil {
		return nil, fmt.Errorf("proxmox configuration (%s): %w", path, err)
	}
	return e, nil
}
