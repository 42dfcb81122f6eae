package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce/container"
	"github.com/gpulab/gpulab/agent/internal/enforce/proxmox"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestRunSettingsFromTheEnvironment(t *testing.T) {
	pveFile := filepath.Join(t.TempDir(), "proxmox.json")
	body := `{"token_id": "root@pam!gpulab", "secret": "5f0c2a1e-7d3b-4c9a-8e6f-1b2d3c4e5f60",
		"ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", "tls_fingerprint": "` +
		strings.Repeat("0a:", 31) + `0a"}`
	if err := os.WriteFile(pveFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		env     map[string]string
		wantErr string
		check   func(t *testing.T, removeHomes bool, ctr any)
	}{
		"defaults": {env: map[string]string{envProxmoxConfig: ""}, check: func(t *testing.T, removeHomes bool, ctr any) {
			if removeHomes {
				t.Error("RemoveHomes by default, want lock")
			}
			if _, ok := ctr.(*container.Enforcer); !ok && !proxmoxPresent() {
				t.Errorf("container mode = %T, want the engine-backed one", ctr)
			}
		}},
		"remove on revoke": {env: map[string]string{envOnRevoke: "remove", envProxmoxConfig: pveFile}, check: func(t *testing.T, removeHomes bool, ctr any) {
			if !removeHomes {
				t.Error("GPULAB_ON_REVOKE=remove did not set RemoveHomes")
			}
			if _, ok := ctr.(*proxmox.Enforcer); !ok {
				t.Errorf("container mode = %T, want the Proxmox LXC one", ctr)
			}
		}},
		"bad revoke policy":     {env: map[string]string{envOnRevoke: "delete"}, wantErr: `GPULAB_ON_REVOKE="delete": want lock`},
		"relative state dir":    {env: map[string]string{envStateDir: "state"}, wantErr: "GPULAB_STATE_DIR=\"state\": want an absolute path"},
		"relative socket":       {env: map[string]string{envContainerSocket: "docker.sock"}, wantErr: "want the absolute path of a unix socket"},
		"named proxmox missing": {env: map[string]string{envProxmoxConfig: filepath.Join(t.TempDir(), "none.json")}, wantErr: "proxmox configuration"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := reconcileConfig(env(tc.env), nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ctr, err := cfg.Enforcers.Get(container.Mode)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg.RemoveHomes, ctr)
		})
	}
}

// proxmoxPresent: this machine is itself configured as a Proxmox node.
func proxmoxPresent() bool {
	_, err := os.Stat(proxmox.DefaultConfigPath)
	return err == nil
}
