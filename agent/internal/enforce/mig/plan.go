package mig

import (
	"context"
	"fmt"
	"slices"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/gpu"
)

// plan is what an Apply changes: the recorded instances it keeps, those it
// destroys (another GPU or profile now, or half destroyed), and the
// instances it creates.
type plan struct {
	keep, stale []instance
	create      []creation
}

type creation struct {
	b       *board
	profile string
}

// plan decides an Apply from the host and the record, and refuses, before
// anything changes, what the host cannot do: a GPU absent or not in MIG
// mode, a profile the GPU does not offer, a GPU without room for it.
func (e *Enforcer) plan(ctx context.Context, h *host, rec *record, gpus []string, want string) (*plan, error) {
	for _, u := range gpus {
		b := h.boards[u]
		if b == nil {
			return nil, fmt.Errorf("mig enforcement: GPU %s is not on this node (nvidia-smi does not list it); it may have failed or been removed", u)
		}
		if err := ready(b); err != nil {
			return nil, err
		}
	}
	p := &plan{}
	covered := make(map[string]bool)
	for _, in := range rec.Instances {
		live, err := e.live(ctx, h, in)
		if err != nil {
			return nil, fmt.Errorf("mig enforcement: %w", err)
		}
		if !live {
			continue // a GPU reset or a reboot took it: forget it
		}
		b := h.boards[in.GPUUUID]
		ok := !in.Destroying && !covered[in.GPUUUID] && slices.Contains(gpus, in.GPUUUID)
		if ok {
			if ok, err = e.matches(ctx, b, in, rec.Profile, want); err != nil {
				return nil, fmt.Errorf("mig enforcement: %w", err)
			}
		}
		if !ok {
			p.stale = append(p.stale, in)
			continue
		}
		in.GPUIndex = b.Index
		p.keep = append(p.keep, in)
		covered[in.GPUUUID] = true
	}
	for _, u := range gpus {
		if covered[u] {
			continue
		}
		b := h.boards[u]
		ps, err := e.listProfiles(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("mig enforcement: %w", err)
		}
		name := want
		if name == "" {
			name = largest(ps).name
		}
		i := slices.IndexFunc(ps, func(p profile) bool { return p.name == name })
		if i < 0 {
			return nil, fmt.Errorf("mig enforcement: %s offers no MIG profile %s; it offers %s", b, name, profileNames(ps))
		}
		freed := slices.ContainsFunc(p.stale, func(in instance) bool { return in.GPUUUID == u })
		if ps[i].free == 0 && !freed {
			return nil, fmt.Errorf("mig enforcement: %s has no room for another %s instance (0 of %d free): other MIG instances hold its slices; remove them or request a smaller profile",
				b, name, ps[i].total)
		}
		p.create = append(p.create, creation{b: b, profile: name})
	}
	return p, nil
}

// matches reports whether in is of the profile the assignment asks for. An
// instance created for "the largest" still is one while "the largest" is
// asked for, without listing the profiles again.
func (e *Enforcer) matches(ctx context.Context, b *board, in instance, recorded, want string) (bool, error) {
	switch {
	case want != "":
		return in.Profile == want, nil
	case recorded == "":
		return true, nil
	}
	ps, err := e.listProfiles(ctx, b)
	if err != nil {
		return false, err
	}
	return in.Profile == largest(ps).name, nil
}

// live reports whether the recorded instance is still on the host: its GPU
// instance with the same id and profile (-lgi), and its MIG device (-L),
// or, when a destroy was under way, the GPU instance alone. A GPU instance
// with the recorded id but without the recorded device was made by someone
// else after a reset: it is not ours, and is left alone.
func (e *Enforcer) live(ctx context.Context, h *host, in instance) (bool, error) {
	b := h.boards[in.GPUUUID]
	if b == nil || !b.MIGEnabled {
		return false, nil
	}
	gis, err := e.listGIs(ctx, b)
	if err != nil {
		return false, err
	}
	if prof, ok := gis[in.GI]; !ok || prof != in.Profile {
		return false, nil
	}
	return in.Destroying || h.hasDevice(in.GPUUUID, in.MIGUUID), nil
}

// find returns the index in rec of the instance on the same GPU with the
// same GPU instance id as in.
func (r *record) find(in instance) int {
	return slices.IndexFunc(r.Instances, func(x instance) bool { return x.GPUUUID == in.GPUUUID && x.GI == in.GI })
}

// destroyRecorded destroys the recorded instance in and takes it out of rec,
// saving the state before (marked Destroying) and after.
func (e *Enforcer) destroyRecorded(ctx context.Context, st *state, rec *record, h *host, in instance) error {
	i := rec.find(in)
	b := h.boards[in.GPUUUID]
	if i < 0 || b == nil {
		return nil
	}
	rec.Instances[i].Destroying = true
	if err := e.save(st); err != nil {
		return err
	}
	if err := e.destroy(ctx, b, in.GI, in.CI); err != nil {
		if says(err, reasonInUse) {
			return fmt.Errorf("mig enforcement: MIG device %s, GPU instance %d of %s, is still used by a process, so it was not destroyed; it stays recorded and is retried at the next reconcile: %w",
				in.MIGUUID, in.GI, b, err)
		}
		return fmt.Errorf("mig enforcement: destroy MIG device %s, GPU instance %d of %s: %w", in.MIGUUID, in.GI, b, err)
	}
	rec.Instances = slices.Delete(rec.Instances, i, i+1)
	h.devices[b.UUID] = slices.DeleteFunc(h.devices[b.UUID], func(d gpu.MIGDevice) bool { return d.UUID == in.MIGUUID })
	return e.save(st)
}

// createRecorded creates c's instance, finds its MIG device by comparing
// nvidia-smi -L before and after (Apply holds the mutex, so no other change
// of this enforcer's runs in between), and records it.
func (e *Enforcer) createRecorded(ctx context.Context, st *state, rec *record, h *host, c creation) (instance, error) {
	b := c.b
	before := h.devices[b.UUID]
	gi, ci, err := e.create(ctx, b, c.profile)
	b.profiles = nil // the free counts changed, or may have
	if says(err, reasonNoRoom) {
		return instance{}, fmt.Errorf("mig enforcement: %s has no room for a %s instance; other MIG instances hold its slices, or leave no gap where it fits: %w", b, c.profile, err)
	}
	if err != nil {
		return instance{}, fmt.Errorf("mig enforcement: create a %s MIG instance on %s: %w", c.profile, b, err)
	}
	undo := func(err error) (instance, error) {
		if derr := e.destroy(ctx, b, gi, ci); derr != nil {
			err = fmt.Errorf("%w; destroying GPU instance %d again also failed: %w", err, gi, derr)
		}
		return instance{}, fmt.Errorf("mig enforcement: %w", err)
	}
	devs, err := e.listDevices(ctx)
	if err != nil {
		return undo(err)
	}
	var fresh []gpu.MIGDevice
	for _, d := range devs[b.UUID] {
		if !slices.ContainsFunc(before, func(o gpu.MIGDevice) bool { return o.UUID == d.UUID }) {
			fresh = append(fresh, d)
		}
	}
	switch {
	case len(fresh) != 1:
		return undo(fmt.Errorf("after creating GPU instance %d on %s, nvidia-smi -L lists %d new MIG devices there, not 1; did something else change its MIG layout at the same time?", gi, b, len(fresh)))
	case !enforce.MIGUUIDRE.MatchString(fresh[0].UUID):
		return undo(fmt.Errorf("nvidia-smi names the new MIG device %q, not MIG-<uuid>: the form of drivers before R470, which mig enforcement does not support", fresh[0].UUID))
	}
	h.devices = devs
	in := instance{GPUUUID: b.UUID, GPUIndex: b.Index, GI: gi, CI: ci, MIGUUID: fresh[0].UUID, Profile: c.profile}
	rec.Instances = append(rec.Instances, in)
	if err := e.save(st); err != nil {
		// Unrecorded, it would be leaked: nothing else knows it is ours.
		rec.Instances = rec.Instances[:len(rec.Instances)-1]
		return undo(err)
	}
	return in, nil
}
