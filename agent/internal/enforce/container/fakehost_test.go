package container

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/container/dockertest"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/sshd"
	"github.com/gpulab/gpulab/agent/internal/sshd/sshdtest"
)

const (
	uuid0 = "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02"
	uuid1 = "GPU-11111111-2222-3333-4444-555555555555"
	key1  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"
	key2  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkLMfUdLQ4BhzEYDjg1NiGNuDY5bUp8q2x3uhtC6VuD alice@desk"
)

// fakeHost is a fake Docker engine, a fake root with the sshd drop-in
// directory, a state directory, and a Runner standing in for sshd and
// systemctl: its sshd -T prints the SetEnv of the user's container drop-in
// as `setenv ...`, as the real one does.
type fakeHost struct {
	t        *testing.T
	root     string
	stateDir string
	docker   *dockertest.Server
	*sshdtest.Host
}

func newFakeHost(t *testing.T, images ...string) *fakeHost {
	t.Helper()
	if images == nil {
		images = []string{DefaultImage}
	}
	root := t.TempDir()
	// A node booted with systemd, whose sshd is reloaded through its unit.
	for _, d := range []string{sshd.DropInDir, "/run/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &fakeHost{
		t:        t,
		root:     root,
		stateDir: filepath.Join(t.TempDir(), "containers"),
		docker:   dockertest.New(t, images...),
		Host:     &sshdtest.Host{Dir: filepath.Join(root, sshd.DropInDir)},
	}
}

func (h *fakeHost) config() Config {
	return Config{
		Socket:   h.docker.Socket,
		StateDir: h.stateDir,
	}
}

func (h *fakeHost) host() hostexec.Host { return hostexec.Host{Root: h.root, Runner: h} }

func (h *fakeHost) enforcer() *Enforcer { return New(h.host(), nil, h.config()) }

func (h *fakeHost) dropInPath(user string) string {
	return filepath.Join(h.root, sshd.DropInDir, "10-gpulab-container-"+user+".conf")
}

func (h *fakeHost) dropIn(user string) (string, bool) {
	data, err := os.ReadFile(h.dropInPath(user))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return string(data), true
}

// created decodes the creation request of container name.
func (h *fakeHost) created(name string) (createBody, dockertest.Container) {
	h.t.Helper()
	c, ok := h.docker.Container(name)
	if !ok {
		h.t.Fatalf("no container %s (have %q)", name, h.docker.Containers())
	}
	var b createBody
	if err := json.Unmarshal(c.Body, &b); err != nil {
		h.t.Fatal(err)
	}
	return b, c
}

func (h *fakeHost) keys(id string) string {
	h.t.Helper()
	data, err := os.ReadFile(filepath.Join(h.stateDir, id, "authorized_keys"))
	if err != nil {
		h.t.Fatal(err)
	}
	return string(data)
}

func assignment(id, user string, gpus ...enforce.GPU) enforce.Assignment {
	return enforce.Assignment{ID: id, LinuxUsername: user, GPUs: gpus, CPUs: 8, RAMMB: 65536, SSHKeys: []string{key1}}
}

// calls renders requests as "METHOD path" for comparison.
func calls(reqs []dockertest.Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.String())
	}
	return out
}

func wantCalls(t *testing.T, got []dockertest.Request, want ...string) {
	t.Helper()
	if g := calls(got); !slices.Equal(g, want) {
		t.Errorf("engine requests =\n  %s\nwant\n  %s", strings.Join(g, "\n  "), strings.Join(want, "\n  "))
	}
}
