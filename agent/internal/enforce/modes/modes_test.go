package modes

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce/container"
	"github.com/gpulab/gpulab/agent/internal/enforce/proxmox"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

const pveConfig = `{"token_id": "root@pam!gpulab", "secret": "5f0c2a1e-7d3b-4c9a-8e6f-1b2d3c4e5f60",
	"ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
	"tls_fingerprint": "0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a:0a"}`

func TestEveryModeIsRegisteredAndTheContainerModeFollowsTheNode(t *testing.T) {
	plain := t.TempDir()
	pve := t.TempDir()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(pve, proxmox.DefaultConfigPath)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pve, proxmox.DefaultConfigPath), []byte(pveConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		root string
		want any
	}{
		"a node without Proxmox": {plain, &container.Enforcer{}},
		// The configuration is looked for under the host's root, so that a
		// test's fake host never picks up the machine's own.
		"a Proxmox node": {pve, &proxmox.Enforcer{}},
	} {
		t.Run(name, func(t *testing.T) {
			reg, err := New(Options{Host: hostexec.Host{Root: tc.root}})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := reg.Names(), []string{"cgroup", "container", "mig", "soft"}; !slices.Equal(got, want) {
				t.Errorf("modes = %q, want %q", got, want)
			}
			ctr, _ := reg.Get(container.Mode)
			if got, want := fmt.Sprintf("%T", ctr), fmt.Sprintf("%T", tc.want); got != want {
				t.Errorf("container mode = %s, want %s", got, want)
			}
		})
	}
}

func TestANamedProxmoxConfigurationMustExistAndBeValid(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"token_id": "root@pam"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"missing": filepath.Join(dir, "none.json"), "invalid": bad} {
		t.Run(name, func(t *testing.T) {
			_, err := New(Options{Host: hostexec.Host{Root: dir}, ProxmoxConfig: path})
			if err == nil || !strings.Contains(err.Error(), "proxmox configuration ("+path+")") {
				t.Errorf("New = %v, want an error naming %s", err, path)
			}
		})
	}
}
