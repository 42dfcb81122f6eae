package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gpulab/gpulab/agent/internal/proxmox"
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
func reconcileConfig(lookupEnv func(string) (string, bool)) (reconcile.Config, error) {
	var cfg reconcile.Config
	switch v, _ := lookupEnv(envOnRevoke); v {
	case "", "lock":
	case "remove":
		cfg.RemoveHomes = true
	default:
		return cfg, fmt.Errorf("%s=%q: want lock (keep the account locked with its home) or remove (delete it with its home)", envOnRevoke, v)
	}
	opts := reconcile.Options{}
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
	pve, err := proxmoxEnforcer(lookupEnv)
	if err != nil {
		return cfg, err
	}
	if pve != nil {
		opts.Container = pve
	}
	// opts.Soft stays zero: the real host and the commands' bare names, as
	// the reconciler's own defaults.
	cfg.Enforcers = reconcile.DefaultEnforcers(opts)
	return cfg, nil
}

// proxmoxEnforcer is the Proxmox VE container mode when this node has its
// configuration, else nil.
func proxmoxEnforcer(lookupEnv func(string) (string, bool)) (*proxmox.Enforcer, error) {
	path, explicit := lookupEnv(envProxmoxConfig)
	if path == "" {
		path, explicit = proxmox.DefaultConfigPath, false
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !explicit {
		return nil, nil
	}
	cfg, err := proxmox.LoadConfig(path)
	if err != nil {
		return nil, fmt.Errorf("proxmox configuration (%s): %w", path, err)
	}
	cfg.DeviceFor = proxmox.DeviceFromProc("/")
	e, err := proxmox.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("proxmox configuration (%s): %w", path, err)
	}
	return e, nil
}
