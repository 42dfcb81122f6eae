package main

import (
	"fmt"

	"github.com/gpulab/gpulab/agent/internal/reconcile"
)

// The run command's settings from the environment: the systemd unit reads
// them from /etc/gpulab/agent.env (EnvironmentFile=), where the install
// script and the admin put them.
const (
	// envOnRevoke is what happens to an account whose last assignment ended:
	// "lock" (the default: locked, expired, keys emptied, home kept) or
	// "remove" (then deleted with its home, userdel --remove).
	envOnRevoke = "GPULAB_ON_REVOKE"
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
	return cfg, nil
}
