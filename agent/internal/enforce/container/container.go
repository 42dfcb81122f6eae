package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/gpulab/gpulab/agent/internal/atomicfile"
	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/sshd"
)

// Mode is this enforcement mode's name, also the name of its sshd drop-ins
// (10-gpulab-container-<user>.conf).
const Mode = "container"

// Defaults of Config.
const (
	DefaultImage    = "docker.io/nvidia/cuda:12.6.3-base-ubuntu24.04"
	DefaultStateDir = "/var/lib/gpulab/containers"
)

// DefaultSockets are tried in order, under the host's root, when
// Config.Socket is empty: Docker's, then rootful Podman's.
var DefaultSockets = []string{"/var/run/docker.sock", "/run/podman/podman.sock"}

// Config says which engine, image and directories to use. The zero value,
// filled in by New, is the real host with the default image.
type Config struct {
	// Socket is the engine API's unix socket; empty: the first of
	// DefaultSockets that exists, looked up on every call.
	Socket string
	// Image is the container image: it must have /bin/sh, and either
	// /usr/sbin/sshd or apt-get to install openssh-server. DefaultImage
	// when empty. The host must hold it or be allowed to pull it.
	Image string
	// StateDir holds one directory per assignment with its authorized_keys;
	// DefaultStateDir under the host's root when empty.
	StateDir string
}

// Enforcer is the container mode's enforce.Enforcer. It is safe for
// concurrent use.
type Enforcer struct {
	host  hostexec.Host
	cfg   Config
	drops *sshd.DropIns

	mu sync.Mutex
	// ports is the published sshd port of each running gpulab container,
	// read from the engine just before the drop-in is rendered (the
	// drop-ins' Session hook has no context to ask it itself).
	ports map[string]int
}

var _ enforce.Enforcer = (*Enforcer)(nil)

// New returns the container Enforcer of host h (the engine's sockets and the
// state under its Root; its sshd, through srv, for the host-side drop-in; nil
// srv is a Server of its own over h), with cfg's defaults filled in.
func New(h hostexec.Host, srv *sshd.Server, cfg Config) *Enforcer {
	h = h.WithDefaults()
	if cfg.Image == "" {
		cfg.Image = DefaultImage
	}
	if cfg.StateDir == "" {
		cfg.StateDir = h.Path(DefaultStateDir)
	}
	if srv == nil {
		srv = sshd.NewServer(h, nil)
	}
	e := &Enforcer{host: h, cfg: cfg}
	e.drops = sshd.NewDropIns(srv, sshd.DropInConfig{Mode: Mode, Session: e.session})
	return e
}

// validate checks the names (an assignment id becomes a container name,
// the engine's [a-zA-Z0-9][a-zA-Z0-9_.-]+, and a directory name) and shares.
func validate(a enforce.Assignment) error {
	if err := enforce.CheckNames(Mode, a, false); err != nil {
		return err
	}
	if a.CPUs < 0 || a.RAMMB < 0 {
		return fmt.Errorf("container enforcement: negative share (%d CPUs, %d MiB)", a.CPUs, a.RAMMB)
	}
	for i, k := range a.SSHKeys {
		if strings.TrimSpace(k) == "" || strings.ContainsAny(k, "\n\r\x00") {
			return fmt.Errorf("container enforcement: SSH key %d is not one authorized_keys line", i+1)
		}
	}
	return nil
}

// Apply runs a's container with a's GPUs and limits, gives it a's keys, and
// makes the user's host account a jump host to it. Idempotent: when the
// container runs with the same settings and the keys file is unchanged, it
// sends the engine no mutating request and writes nothing.
func (e *Enforcer) Apply(ctx context.Context, a enforce.Assignment) error {
	if err := validate(a); err != nil {
		return err
	}
	body, hash := e.spec(a)
	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.connect(ctx)
	if err != nil {
		return err
	}
	if g == nil {
		return e.errNoEngine()
	}
	defer g.close()

	if err := e.writeKeys(a); err != nil {
		return err
	}
	if err := e.ensure(ctx, g, a, body, hash); err != nil {
		return err
	}
	if err := e.readPorts(ctx, g); err != nil {
		return err
	}
	// The host account sees no GPU: it only forwards (ForceCommand).
	return e.drops.Apply(ctx, enforce.Assignment{ID: a.ID, LinuxUsername: a.LinuxUsername})
}

// ensure makes the container gpulab-<id> exist with this spec and run.
func (e *Enforcer) ensure(ctx context.Context, g *engine, a enforce.Assignment, body *createBody, hash string) error {
	name := containerName(a.ID)
	c, err := g.inspect(ctx, name)
	if err != nil {
		return e.engineErr("inspect container "+name, err)
	}
	if c != nil && c.Config.Labels[labelSpec] != hash {
		// The assignment changed (or this package's settings did): the
		// engine cannot change devices in place, so recreate. The
		// container's own files go with it.
		if err := g.remove(ctx, name); err != nil {
			return e.engineErr("remove outdated container "+name, err)
		}
		c = nil
	}
	if c == nil {
		if err := e.create(ctx, g, name, body); err != nil {
			return err
		}
	}
	if c == nil || !c.State.Running {
		if err := g.start(ctx, name); err != nil {
			return e.engineErr("start container "+name, err)
		}
		if c, err = g.inspect(ctx, name); err != nil {
			return e.engineErr("inspect container "+name, err)
		}
		if c == nil {
			return fmt.Errorf("container enforcement: container %s vanished right after it was started", name)
		}
		if !c.State.Running {
			return fmt.Errorf("container enforcement: container %s is %s after start (exit code %d%s); see `docker logs %s` - the image %s needs /bin/sh and sshd (or apt-get to install it)",
				name, c.State.Status, c.State.ExitCode, prefixed("; ", c.State.Error), name, e.cfg.Image)
		}
	}
	want := deviceIDs(body.HostConfig.DeviceRequests)
	if got := deviceIDs(c.HostConfig.DeviceRequests); !slices.Equal(got, want) {
		// An engine that drops the request (Podman's compatible API
		// does on some versions) would run the container without its
		// GPUs, silently.
		return fmt.Errorf("container enforcement: the engine at %s kept GPU device request %q for %s, want %q: it needs Docker with the NVIDIA Container Toolkit (or an engine whose API honours DeviceRequests)",
			g.socket, got, name, want)
	}
	if sshHostPort(c.NetworkSettings.Ports) == 0 {
		return fmt.Errorf("container enforcement: container %s publishes no port for its sshd on 127.0.0.1", name)
	}
	return nil
}

// create creates the container, pulling the image once when the engine
// does not have it.
func (e *Enforcer) create(ctx context.Context, g *engine, name string, body *createBody) error {
	err := g.create(ctx, name, body)
	if isStatus(err, http.StatusNotFound) { // "No such image"
		if perr := g.pull(ctx, body.Image); perr != nil {
			return fmt.Errorf("container enforcement: image %s is not on this host and pulling it failed: %v (the host must hold the image or be allowed to pull it)", body.Image, perr)
		}
		err = g.create(ctx, name, body)
	}
	if err != nil {
		return e.engineErr("create container "+name, err)
	}
	return nil
}

// Remove deletes the assignment's container, its sshd drop-in entry and its
// keys. Removing what is not there succeeds.
func (e *Enforcer) Remove(ctx context.Context, id string) error {
	if !enforce.AssignmentIDRE.MatchString(id) {
		return fmt.Errorf("container enforcement: assignment id %.70q is not valid", id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	g, err := e.connect(ctx)
	if err != nil {
		return err
	}
	if g != nil {
		// No engine, no container: the drop-in and keys still go.
		defer g.close()
		if err := g.remove(ctx, containerName(id)); err != nil {
			return e.engineErr("remove container "+containerName(id), err)
		}
		if err := e.readPorts(ctx, g); err != nil {
			return err
		}
	}
	if err := e.drops.Remove(ctx, id); err != nil {
		return err
	}
	if err := os.RemoveAll(e.keysDir(id)); err != nil {
		return fmt.Errorf("container enforcement: remove %s: %w", e.keysDir(id), err)
	}
	return nil
}

// Applied lists the assignments with a gpulab container, a container
// drop-in entry or a keys directory on this host, so that Remove also
// clears what a failed Apply left half done.
func (e *Enforcer) Applied(ctx context.Context) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make(map[string]bool)
	g, err := e.connect(ctx)
	if err != nil {
		return nil, err
	}
	if g != nil {
		defer g.close()
		cs, err := g.list(ctx, labelAssignment)
		if err != nil {
			return nil, e.engineErr("list gpulab containers", err)
		}
		for _, c := range cs {
			if id := c.Labels[labelAssignment]; enforce.AssignmentIDRE.MatchString(id) {
				ids[id] = true
			}
		}
	}
	softIDs, err := e.drops.Applied(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range softIDs {
		ids[id] = true
	}
	entries, err := os.ReadDir(e.cfg.StateDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container enforcement: list %s: %w", e.cfg.StateDir, err)
	}
	for _, ent := range entries {
		if ent.IsDir() && enforce.AssignmentIDRE.MatchString(ent.Name()) {
			ids[ent.Name()] = true
		}
	}
	return slices.Sorted(maps.Keys(ids)), nil
}

// socket is the engine socket to use, or "" when none exists.
func (e *Enforcer) socket() string {
	candidates := e.defaultSockets()
	if e.cfg.Socket != "" {
		candidates = []string{e.cfg.Socket}
	}
	for _, s := range candidates {
		if _, err := os.Stat(s); err == nil {
			return s
		}
	}
	return ""
}

// connect returns a client of the engine, nil when no socket exists, or an
// error when one exists but the engine does not answer.
func (e *Enforcer) connect(ctx context.Context) (*engine, error) {
	s := e.socket()
	if s == "" {
		return nil, nil
	}
	g := newEngine(s)
	if err := g.ping(ctx); err != nil {
		g.close()
		return nil, fmt.Errorf("container enforcement needs a Docker-compatible engine API at %s (Docker with the NVIDIA Container Toolkit, or Podman's socket); it does not answer: %v", s, err)
	}
	return g, nil
}

// defaultSockets are DefaultSockets under the host's root.
func (e *Enforcer) defaultSockets() []string {
	out := make([]string, len(DefaultSockets))
	for i, s := range DefaultSockets {
		out[i] = e.host.Path(s)
	}
	return out
}

func (e *Enforcer) errNoEngine() error {
	where := strings.Join(e.defaultSockets(), " or ")
	socket := e.cfg.Socket
	if socket != "" {
		where = socket
	}
	return fmt.Errorf("container enforcement needs a Docker-compatible engine API at %s (Docker with the NVIDIA Container Toolkit, or Podman's socket); none found", where)
}

// engineErr says what was being done and what the engine answered.
func (e *Enforcer) engineErr(doing string, err error) error {
	return fmt.Errorf("container enforcement: %s: engine says: %w", doing, err)
}

// writeKeys makes StateDir/<id>/authorized_keys hold a's keys; unchanged
// content is not rewritten. The directory is what the container mounts.
func (e *Enforcer) writeKeys(a enforce.Assignment) error {
	dir := e.keysDir(a.ID)
	var want []byte
	if len(a.SSHKeys) > 0 {
		want = []byte(strings.Join(a.SSHKeys, "\n") + "\n")
	}
	old, err := os.ReadFile(filepath.Join(dir, keysFile))
	if err == nil && bytes.Equal(old, want) {
		return nil
	}
	// 0755 and 0644, root's: sshd's StrictModes refuses keys that anyone
	// but root could change; the umask must not narrow or widen them.
	for _, d := range []string{e.cfg.StateDir, dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("container enforcement: create %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("container enforcement: %w", err)
		}
	}
	if err := atomicfile.Write(dir, keysFile, ".authorized_keys-*.tmp", want, 0o644); err != nil {
		return fmt.Errorf("container enforcement: authorized_keys for %s: %w", a.ID, err)
	}
	return nil
}

var _ enforce.AccessPorter = (*Enforcer)(nil)

// AccessPort is the 127.0.0.1 port the engine published for the sshd of
// assignment id's running container, as read at the last Apply or Remove; 0
// when it has none.
func (e *Enforcer) AccessPort(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ports[id]
}

// readPorts refreshes e.ports from the engine for the Session hook.
func (e *Enforcer) readPorts(ctx context.Context, g *engine) error {
	cs, err := g.list(ctx, labelAssignment)
	if err != nil {
		return e.engineErr("list gpulab containers", err)
	}
	ports := make(map[string]int)
	for _, c := range cs {
		for _, p := range c.Ports {
			if p.PrivatePort == 22 && p.Type == "tcp" && p.IP == "127.0.0.1" && p.PublicPort > 0 {
				ports[c.Labels[labelAssignment]] = p.PublicPort
			}
		}
	}
	e.ports = ports
	return nil
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
