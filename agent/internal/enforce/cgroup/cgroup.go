package cgroup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/gpu"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/sshd"
)

// Mode is this enforcer's mode name, also its sshd drop-ins' (10-gpulab-cgroup-<user>.conf).
const Mode = "cgroup"

// Enforcer is the cgroup mode's enforce.Enforcer. It is safe for concurrent
// use.
type Enforcer struct {
	host  hostexec.Host
	drops *sshd.DropIns

	mu sync.Mutex
}

var _ enforce.Enforcer = (*Enforcer)(nil)

// New returns the cgroup Enforcer of host h (its Root's /etc, /run, /sys and
// /dev; its systemctl), whose drop-ins srv checks and reloads; nil srv is a
// Server of its own over h.
func New(h hostexec.Host, srv *sshd.Server) *Enforcer {
	h = h.WithDefaults()
	if srv == nil {
		srv = sshd.NewServer(h, nil)
	}
	return &Enforcer{host: h, drops: sshd.NewDropIns(srv, sshd.DropInConfig{Mode: Mode})}
}

// Apply limits a.LinuxUsername's slice to a (summed with the user's other
// cgroup assignments), then sets their sessions' CUDA_VISIBLE_DEVICES. The
// limits come first: a failure between the two leaves the user limited, never
// unlimited with access. Idempotent: when the drop-in already says so it
// neither rewrites it nor reloads systemd.
func (e *Enforcer) Apply(ctx context.Context, a enforce.Assignment) error {
	if err := validate(a); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	devs, err := e.preflight(a)
	if err != nil {
		return err
	}
	uid, err := e.uid(a.LinuxUsername)
	if err != nil {
		return err
	}
	all, err := e.readAll()
	if err != nil {
		return err
	}
	var changed []*sliceDropIn
	// An id moved to another user (or uid) leaves its old slice first.
	for _, d := range all {
		if d.uid != uid && d.drop(a.ID) {
			changed = append(changed, d)
		}
	}
	d := findUID(all, uid)
	if d == nil {
		d = &sliceDropIn{uid: uid}
	}
	want := entry{id: a.ID, user: a.LinuxUsername, cpus: a.CPUs, ramMB: a.RAMMB, devs: devs}
	if d.set(want) {
		changed = append(changed, d)
	}
	if err := e.save(ctx, changed); err != nil {
		return err
	}
	return e.drops.Apply(ctx, a)
}

// Remove takes id out of its slice drop-in (deleting the drop-in with its
// last assignment) and out of the user's sshd drop-in. Removing an id no
// drop-in holds succeeds without running anything.
func (e *Enforcer) Remove(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	all, err := e.readAll()
	if err != nil {
		return err
	}
	var changed []*sliceDropIn
	for _, d := range all {
		if d.drop(id) {
			changed = append(changed, d)
		}
	}
	if err := e.save(ctx, changed); err != nil {
		return err
	}
	return e.drops.Remove(ctx, id)
}

// Applied lists the assignment ids that a slice drop-in or a cgroup sshd
// drop-in on the host records: either half left over needs a Remove.
func (e *Enforcer) Applied(ctx context.Context) ([]string, error) {
	e.mu.Lock()
	all, err := e.readAll()
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ids, err := e.drops.Applied(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range all {
		for _, en := range d.entries {
			ids = append(ids, en.id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// preflight refuses, before anything is written, a host that cannot enforce
// a, and returns the device node of each of a's GPUs: the admin reads the
// refusal in the dashboard, so it names what is missing and what to do.
func (e *Enforcer) preflight(a enforce.Assignment) ([]device, error) {
	if fi, err := os.Stat(e.path("run/systemd/system")); err != nil || !fi.IsDir() {
		return nil, errors.New("cgroup enforcement needs systemd as the init system, and this node does not run it (no /run/systemd/system); use the soft or container mode here")
	}
	data, err := os.ReadFile(e.path("sys/fs/cgroup/cgroup.controllers"))
	if err != nil {
		return nil, errors.New("cgroup enforcement needs the unified cgroup v2 hierarchy, and /sys/fs/cgroup is not one (cgroup v1 or hybrid); boot with systemd.unified_cgroup_hierarchy=1")
	}
	have := strings.Fields(string(data))
	for _, c := range []string{"cpu", "memory"} {
		if !slices.Contains(have, c) {
			return nil, fmt.Errorf("cgroup enforcement needs the %s controller of cgroup v2, and this kernel does not offer it (cgroup.controllers: %q)", c, strings.TrimSpace(string(data)))
		}
	}
	devs := make([]device, 0, len(a.GPUs))
	for _, g := range a.GPUs {
		// By UUID: nvidia-smi's index is not the device minor (gpu.DeviceNode).
		node, err := gpu.DeviceNode(e.host.Root, g.UUID)
		if err != nil {
			return nil, fmt.Errorf("cgroup enforcement cannot allow GPU %s: %w", g.UUID, err)
		}
		if _, err := os.Stat(e.path(node)); err != nil {
			return nil, fmt.Errorf("cgroup enforcement cannot allow GPU %s: %s does not exist on this node (is the NVIDIA driver loaded?)", g.UUID, node)
		}
		devs = append(devs, device{node: node, uuid: g.UUID})
	}
	return devs, nil
}

// uid reads user's uid from the host's passwd: the reconciler created the
// account before the enforcer runs.
func (e *Enforcer) uid(user string) (int, error) {
	f, err := os.Open(e.path("etc/passwd"))
	if err != nil {
		return 0, fmt.Errorf("cgroup enforcement: read /etc/passwd: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 3 && fields[0] == user {
			uid, err := strconv.Atoi(fields[2])
			if err != nil || uid < 0 {
				return 0, fmt.Errorf("cgroup enforcement: /etc/passwd gives user %s the uid %q", user, fields[2])
			}
			return uid, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("cgroup enforcement: read /etc/passwd: %w", err)
	}
	return 0, fmt.Errorf("cgroup enforcement: user %s does not exist on this node", user)
}

// save writes the changed drop-ins and has systemd apply them; nothing
// changed, nothing runs.
func (e *Enforcer) save(ctx context.Context, changed []*sliceDropIn) error {
	for _, d := range changed {
		if err := e.write(d); err != nil {
			return err
		}
	}
	if len(changed) == 0 {
		return nil
	}
	return e.reload(ctx)
}

// reload makes systemd read the changed drop-ins and apply them to the
// slices that are running.
func (e *Enforcer) reload(ctx context.Context) error {
	if _, stderr, err := e.host.Runner.Run(ctx, e.host.Commands.Systemctl, "daemon-reload"); err != nil {
		return fmt.Errorf("cgroup enforcement: systemctl daemon-reload: %w: %s", err, strings.TrimSpace(string(stderr)))
	}
	return nil
}

func (e *Enforcer) path(p string) string { return filepath.Join(e.host.Root, p) }

func findUID(all []*sliceDropIn, uid int) *sliceDropIn {
	for _, d := range all {
		if d.uid == uid {
			return d
		}
	}
	return nil
}
