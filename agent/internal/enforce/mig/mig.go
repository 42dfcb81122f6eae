package mig

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/sshd"
)

// Mode is this enforcement mode's name, also the drop-ins' (10-gpulab-mig-
// <user>.conf).
const Mode = "mig"

// DefaultTimeout bounds each nvidia-smi run when Config.Timeout is zero.
// Creating a GPU instance takes a few seconds on a busy 8-GPU node; a hung
// driver makes nvidia-smi wait for minutes, and the heartbeat must go on.
const DefaultTimeout = 30 * time.Second

// Config says where the state lives and how long nvidia-smi may take. The
// zero value, filled in by New, is the defaults.
type Config struct {
	// StateDir holds StateFile; the host's /var/lib/gpulab when empty.
	// Created 0700 on first write.
	StateDir string
	// Timeout bounds each nvidia-smi run; DefaultTimeout when zero.
	Timeout time.Duration
}

// Enforcer is the mig mode's enforce.Enforcer. It is safe for concurrent
// use: one mutex serialises Apply and Remove, which is what makes the
// before/after diff of nvidia-smi -L name the device an Apply created.
type Enforcer struct {
	host  hostexec.Host
	cfg   Config
	drops *sshd.DropIns

	mu sync.Mutex
}

var _ enforce.Enforcer = (*Enforcer)(nil)

// New returns the mig Enforcer of host h (its nvidia-smi; its sshd, through
// srv, for the drop-ins that expose the MIG devices; nil srv is a Server of
// its own over h), with cfg's defaults filled in.
func New(h hostexec.Host, srv *sshd.Server, cfg Config) *Enforcer {
	h = h.WithDefaults()
	if cfg.StateDir == "" {
		cfg.StateDir = h.Path("/var/lib/gpulab")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if srv == nil {
		srv = sshd.NewServer(h, nil)
	}
	return &Enforcer{host: h, cfg: cfg, drops: sshd.NewDropIns(srv, sshd.DropInConfig{Mode: Mode, MIGDevices: true})}
}

// The names from the control plane are checked before any command runs
// (enforce.CheckNames; soft checks them again). A profile is nvidia-smi's
// GPU-instance profile name: <slices>g.<size>gb, then options such as "+me",
// "-me", "+gfx" or "+me.all" (Blackwell).
var profileRE = regexp.MustCompile(`^[1-8]g\.[0-9]{1,4}gb([+-][a-z]{1,8}(\.[a-z]{1,8})?)*$`)

func validate(a enforce.Assignment) error {
	if err := enforce.CheckNames(Mode, a, false); err != nil {
		return err
	}
	if a.MIGProfile != "" && !profileRE.MatchString(a.MIGProfile) {
		return fmt.Errorf("mig enforcement: MIG profile %.40q is not a GPU-instance profile name such as 1g.10gb or 3g.40gb", a.MIGProfile)
	}
	return nil
}

// ready refuses a GPU that cannot hold MIG instances now, saying what the
// admin can do about it.
func ready(b *board) error {
	switch {
	case b.MIGEnabled:
		return nil
	case !b.MIGCapable:
		return fmt.Errorf("mig enforcement: %s does not support MIG (A100, A30, H100, H200 and later do); choose another enforcement mode for this environment", b)
	case b.MIGEnabledAfterReset:
		return fmt.Errorf("mig enforcement: %s has MIG mode enabled but pending a GPU reset; reset it with `nvidia-smi -i %d -r` while no process uses it, or reboot", b, b.Index)
	}
	return fmt.Errorf("mig enforcement: %s is not in MIG mode; an admin must enable it with `nvidia-smi -i %d -mig 1` and reset the GPU (or reboot), or choose another enforcement mode for this environment", b, b.Index)
}

// Apply creates one MIG instance of a's profile on each of a's GPUs and
// makes them, and only them, the CUDA devices of a's user's SSH sessions.
// Idempotent: when the instances it recorded still exist and match, it runs
// no command that changes the host.
func (e *Enforcer) Apply(ctx context.Context, a enforce.Assignment) error {
	if err := validate(a); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// The drop-ins need their directory; a host without it is refused
	// before any instance is created for nothing.
	if dir := e.host.Path(sshd.DropInDir); !isDir(dir) {
		return fmt.Errorf("mig enforcement needs an sshd that includes %s/*.conf; %s is not a directory", sshd.DropInDir, dir)
	}
	st, err := e.load()
	if err != nil {
		return err
	}
	rec, existed := st.Assignments[a.ID]
	if !existed {
		rec = &record{}
	}
	var gpus []string // a's GPU UUIDs, once each
	for _, g := range a.GPUs {
		if !slices.Contains(gpus, g.UUID) {
			gpus = append(gpus, g.UUID)
		}
	}
	var h *host
	if len(gpus) > 0 || len(rec.Instances) > 0 {
		if h, err = e.readHost(ctx); err != nil {
			return hostErr(err)
		}
	}
	p, err := e.plan(ctx, h, rec, gpus, a.MIGProfile)
	if err != nil {
		return err
	}

	// Refusals are over: from here on the host changes.
	rec.Profile = a.MIGProfile
	st.Assignments[a.ID] = rec
	rec.Instances = slices.Concat(p.keep, p.stale)
	fail := func(err error) error {
		// A first Apply that failed leaves no record to list in Applied.
		if !existed && len(rec.Instances) == 0 {
			delete(st.Assignments, a.ID)
		}
		return errors.Join(err, e.save(st))
	}
	for _, in := range p.stale {
		if err := e.destroyRecorded(ctx, st, rec, h, in); err != nil {
			return fail(err)
		}
	}
	var created []instance
	for _, c := range p.create {
		in, err := e.createRecorded(ctx, st, rec, h, c)
		if err != nil {
			// Undo this Apply's creations: an assignment half on MIG
			// instances is neither the old one nor the new.
			for _, done := range slices.Backward(created) {
				err = errors.Join(err, e.destroyRecorded(ctx, st, rec, h, done))
			}
			return fail(err)
		}
		created = append(created, in)
	}
	if err := e.save(st); err != nil {
		return err
	}
	return e.expose(ctx, a, rec)
}

// expose makes rec's MIG devices the user's CUDA devices through an sshd
// drop-in of mode "mig", ordered by their GPU's index.
func (e *Enforcer) expose(ctx context.Context, a enforce.Assignment, rec *record) error {
	devs := make([]enforce.GPU, 0, len(rec.Instances))
	for _, in := range rec.Instances {
		devs = append(devs, enforce.GPU{Index: in.GPUIndex, UUID: in.MIGUUID})
	}
	a.GPUs = devs
	if err := e.drops.Apply(ctx, a); err != nil {
		return fmt.Errorf("expose the MIG devices to %s's sessions: %w", a.LinuxUsername, err)
	}
	return nil
}

// Remove takes the user's sessions off the assignment's MIG devices, then
// destroys them. An instance already gone is success; one a process still
// uses stays recorded, and the next Remove retries it.
func (e *Enforcer) Remove(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	// First, so that no new session gets the devices about to go; its
	// failure must not keep the GPU slices held, so the destroy goes on.
	var errs []error
	if err := e.drops.Remove(ctx, id); err != nil {
		errs = append(errs, fmt.Errorf("take the MIG devices away from the user's sessions: %w", err))
	}
	st, err := e.load()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	rec := st.Assignments[id]
	if rec == nil {
		return errors.Join(errs...)
	}
	if len(rec.Instances) > 0 {
		h, err := e.readHost(ctx)
		if err != nil {
			return errors.Join(append(errs, hostErr(err))...)
		}
		for _, in := range slices.Clone(rec.Instances) {
			live, err := e.live(ctx, h, in)
			if err == nil && !live {
				if i := rec.find(in); i >= 0 {
					rec.Instances = slices.Delete(rec.Instances, i, i+1)
				}
				continue
			}
			if err == nil {
				err = e.destroyRecorded(ctx, st, rec, h, in)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(rec.Instances) == 0 {
		delete(st.Assignments, id)
	}
	return errors.Join(append(errs, e.save(st))...)
}

// Applied lists the assignments the state records and those the mig
// drop-ins name. It runs no nvidia-smi: a node without MIG assignments, or
// with a hung driver, still lists (and so can remove) what it holds. An
// assignment whose instances a GPU reset destroyed is still listed, so that
// the reconciler's Remove clears it from the state.
func (e *Enforcer) Applied(ctx context.Context) ([]string, error) {
	ids, err := e.drops.Applied(ctx)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	st, err := e.load()
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for id := range st.Assignments {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// hostErr prefixes the mode to an error reading the GPUs, unless it is
// nvidia-smi's absence, whose sentence names the mode already.
func hostErr(err error) error {
	if errors.Is(err, hostexec.ErrNotFound) {
		return err
	}
	return fmt.Errorf("mig enforcement: %w", err)
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// profileNames names the profiles a board offers, for an error message.
func profileNames(ps []profile) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.name
	}
	return strings.Join(names, ", ")
}
