package main

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/gpulab/gpulab/agent/internal/enforce/modes"
	"github.com/gpulab/gpulab/agent/internal/reconcile"
)

// The run command's settings from the environment: the systemd unit reads
// them from /etc/gpulab/agent.env (EnvironmentFile=), where the install
// script and the admin put them. runloop.Usage lists them for the operator.
const (
	// envOnRevoke is what happens to an account whose last assignment ended:
	// "lock" (the default: locked, expired, keys emptied, home kept) or
	// "remove" (then deleted with its home, userdel --remove).
	envOnRevoke = "GPULAB_ON_REVOKE"
	// envStateDir is where the mig and container modes keep their state.
	envStateDir = "GPULAB_STATE_DIR"
	// envContainerSocket and envContainerImage configure the container mode.
	envContainerSocket = "GPULAB_CONTAINER_SOCKET"
	envContainerImage  = "GPULAB_CONTAINER_IMAGE"
	// envProxmoxConfig names the Proxmox VE API configuration. A node whose
	// configuration exists is a Proxmox host: its container mode is an LXC
	// per assignment. Named explicitly, the file must exist.
	envProxmoxConfig = "GPULAB_PROXMOX_CONFIG"
)

// reconcileConfig is the reconciler's configuration from the environment;
// an invalid value is an error naming the variable and what it accepts.
// The modes log to log what they find out about the host.
func reconcileConfig(lookupEnv func(string) (string, bool), log *slog.Logger) (reconcile.Config, error) {
	var cfg reconcile.Config
	switch v, _ := lookupEnv(envOnRevoke); v {
	case "", "lock":
	case "remove":
		cfg.RemoveHomes = true
	default:
		return cfg, fmt.Errorf("%s=%q: want lock (keep the account locked with its home) or remove (delete it with its home)", envOnRevoke, v)
	}
	opts := modes.Options{Log: log}
	if v, _ := lookupEnv(envStateDir); v != "" {
		if !filepath.IsAbs(v) {
			return cfg, fmt.Errorf("%s=%q: want an absolute path", envStateDir, v)
		}
		opts.StateDir = v
	}
	opts.ContainerSocket, _ = lookupEnv(envContainerSocket)
	opts.ContainerImage, _ = lookupEnv(envContainerImage)
	if opts.ContainerSocket != "" && !filepath.IsAbs(opts.ContainerSocket) {
		return cfg, fmt.Errorf("%s=%q: want the absolute path of a unix socket", envContainerSocket, opts.ContainerSocket)
	}
	opts.ProxmoxConfig, _ = lookupEnv(envProxmoxConfig)
	// opts.Host stays zero: the real host and the commands' bare names, as
	// the reconciler's own.
	reg, err := modes.New(opts)
	if err != nil {
		return cfg, err
	}
	cfg.Enforcers = reg
	return cfg, nil
}
