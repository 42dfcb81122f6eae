package mig

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/gpu"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// smiError is nvidia-smi exiting non-zero. nvidia-smi writes its reasons to
// stdout more often than to stderr, so both are kept for the callers that
// tell "In use by another client" from "Not Found".
type smiError struct {
	args []string
	err  error
	out  string
}

func (e *smiError) Error() string {
	msg := fmt.Sprintf("nvidia-smi %s: %v", strings.Join(e.args, " "), e.err)
	// The first line that is not a success says what went wrong: -cgi -C
	// prints the GPU instance it created before the compute instance it
	// could not.
	for line := range strings.Lines(e.out) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "Successfully") {
			return msg + ": " + line
		}
	}
	return msg
}

func (e *smiError) Unwrap() error { return e.err }

// says reports whether err is nvidia-smi failing with this reason.
func says(err error, reason string) bool {
	var se *smiError
	return errors.As(err, &se) && strings.Contains(se.out, reason)
}

// nvidia-smi's reasons, NVML's error strings.
const (
	reasonInUse    = "In use by another client"
	reasonNotFound = "Not Found"
	reasonNoRoom   = "Insufficient Resources"
)

// smi runs nvidia-smi with args under the timeout and returns its stdout.
func (e *Enforcer) smi(ctx context.Context, args ...string) (string, error) {
	runCtx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	stdout, stderr, err := e.host.Runner.Run(runCtx, e.host.Commands.NvidiaSMI, args...)
	switch {
	case err == nil:
		return string(stdout), nil
	case errors.Is(err, hostexec.ErrNotFound):
		return "", fmt.Errorf("mig enforcement needs nvidia-smi from an NVIDIA driver R470 or later; %s is not installed: %w", e.host.Commands.NvidiaSMI, err)
	case ctx.Err() == nil && runCtx.Err() != nil:
		return "", fmt.Errorf("nvidia-smi %s did not answer within %v, a sign of a hung NVIDIA driver", strings.Join(args, " "), e.cfg.Timeout)
	}
	return string(stdout), &smiError{args: args, err: err, out: string(stdout) + string(stderr)}
}

// board is one GPU as nvidia-smi sees it now.
type board struct {
	gpu.GPU
	// gis maps the GPU instance ids listed by -lgi to their profile; nil
	// until listed.
	gis map[int]string
	// profiles are -lgip's, nil until listed.
	profiles []profile
}

func (b *board) String() string { return fmt.Sprintf("GPU %d (%s, %s)", b.Index, b.Name, b.UUID) }

// host is the node's GPUs by UUID with their MIG devices (-L).
type host struct {
	boards  map[string]*board
	devices map[string][]gpu.MIGDevice
}

// readHost lists the GPUs, and their MIG devices when one is in MIG mode.
// It reuses the discovery's query and parsers, so that the formats are read
// in one place.
func (e *Enforcer) readHost(ctx context.Context) (*host, error) {
	out, err := e.smi(ctx, gpu.QueryArgs...)
	h := &host{boards: make(map[string]*board), devices: make(map[string][]gpu.MIGDevice)}
	// The driver without a GPU prints this and exits 6.
	if strings.Contains(out, "No devices were found") {
		return h, nil
	}
	if err != nil && !errors.Is(err, hostexec.ErrNotFound) {
		err = fmt.Errorf("list GPUs: %w", err)
	}
	if err != nil {
		return nil, err
	}
	gpus, err := gpu.ParseQueryGPU([]byte(out))
	if err != nil {
		return nil, fmt.Errorf("parse nvidia-smi GPU list: %w", err)
	}
	anyMIG := false
	for _, g := range gpus {
		h.boards[g.UUID] = &board{GPU: g}
		anyMIG = anyMIG || g.MIGEnabled
	}
	if anyMIG {
		if h.devices, err = e.listDevices(ctx); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func (e *Enforcer) listDevices(ctx context.Context) (map[string][]gpu.MIGDevice, error) {
	out, err := e.smi(ctx, gpu.ListArgs...)
	if err != nil {
		return nil, fmt.Errorf("list MIG devices: %w", err)
	}
	devs, err := gpu.ParseList([]byte(out))
	if err != nil {
		return nil, fmt.Errorf("parse nvidia-smi -L: %w", err)
	}
	return devs, nil
}

// hasDevice reports whether -L lists the MIG device uuid under GPU gpuUUID.
func (h *host) hasDevice(gpuUUID, uuid string) bool {
	return slices.ContainsFunc(h.devices[gpuUUID], func(d gpu.MIGDevice) bool { return d.UUID == uuid })
}

// tableRows returns the rows of one of nvidia-smi mig's tables (-lgi,
// -lgip) that describe an instance or profile: "|   0  MIG 3g.20gb  9 ...|",
// split into fields. Headers, rules and the continuation lines of -lgip
// (engine counts, no "MIG") are skipped.
func tableRows(out string) [][]string {
	var rows [][]string
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
			continue
		}
		f := strings.Fields(line[1 : len(line)-1])
		if len(f) >= 5 && f[1] == "MIG" {
			if _, err := strconv.Atoi(f[0]); err == nil {
				rows = append(rows, f)
			}
		}
	}
	return rows
}

// listGIs fills b.gis from `nvidia-smi mig -i N -lgi`, whose rows are "GPU,
// MIG, profile name, profile id, instance id, start:size".
func (e *Enforcer) listGIs(ctx context.Context, b *board) (map[int]string, error) {
	if b.gis != nil {
		return b.gis, nil
	}
	out, err := e.smi(ctx, "mig", "-i", strconv.Itoa(b.Index), "-lgi")
	b.gis = make(map[int]string)
	if says(err, "No GPU instances found") {
		return b.gis, nil
	}
	if err != nil {
		b.gis = nil
		return nil, fmt.Errorf("list the GPU instances of %s: %w", b, err)
	}
	for _, f := range tableRows(out) {
		id, err := strconv.Atoi(f[4])
		if err != nil {
			b.gis = nil
			return nil, fmt.Errorf("parse nvidia-smi mig -lgi: GPU instance id %q is not a number", f[4])
		}
		b.gis[id] = f[2]
	}
	return b.gis, nil
}

// profile is one row of -lgip.
type profile struct {
	name        string
	id          int
	free, total int
	// slices and gb come from the name ("3g.20gb"), to rank profiles.
	slices, gb int
}

var profileNameRE = regexp.MustCompile(`^([0-9]+)g\.([0-9]+)gb`)

// listProfiles fills b.profiles from `nvidia-smi mig -i N -lgip`, whose rows
// are "GPU, MIG, name, id, free/total, GiB, P2P, SM, DEC, ENC".
func (e *Enforcer) listProfiles(ctx context.Context, b *board) ([]profile, error) {
	if b.profiles != nil {
		return b.profiles, nil
	}
	out, err := e.smi(ctx, "mig", "-i", strconv.Itoa(b.Index), "-lgip")
	if err != nil {
		return nil, fmt.Errorf("list the MIG profiles of %s: %w", b, err)
	}
	var ps []profile
	for _, f := range tableRows(out) {
		p := profile{name: f[2]}
		free, total, ok := strings.Cut(f[4], "/")
		var err1, err2, err3 error
		p.id, err1 = strconv.Atoi(f[3])
		p.free, err2 = strconv.Atoi(free)
		p.total, err3 = strconv.Atoi(total)
		m := profileNameRE.FindStringSubmatch(p.name)
		if !ok || err1 != nil || err2 != nil || err3 != nil || m == nil {
			return nil, fmt.Errorf("parse nvidia-smi mig -lgip: row %q is not a GPU instance profile", strings.Join(f, " "))
		}
		p.slices, _ = strconv.Atoi(m[1])
		p.gb, _ = strconv.Atoi(m[2])
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("nvidia-smi mig -lgip lists no GPU instance profile for %s", b)
	}
	b.profiles = ps
	return ps, nil
}

// largest is the profile that takes the whole GPU: the most compute
// slices, then the most memory; a plain profile before one with extra
// engines or options ("+me", "+gfx") of the same size.
func largest(ps []profile) profile {
	return slices.MaxFunc(ps, func(a, b profile) int {
		return cmp.Or(cmp.Compare(a.slices, b.slices), cmp.Compare(a.gb, b.gb),
			cmp.Compare(len(b.name), len(a.name)), strings.Compare(b.name, a.name))
	})
}

var (
	createdGIRE = regexp.MustCompile(`Successfully created GPU instance ID\s+([0-9]+) on GPU\s+([0-9]+)`)
	createdCIRE = regexp.MustCompile(`Successfully created compute instance ID\s+([0-9]+) on GPU\s+([0-9]+) GPU instance ID\s+([0-9]+)`)
)

// create makes one GPU instance of profile p on b with its default compute
// instance (-C), and returns their ids. When the GPU instance was created
// but not the compute instance, it destroys the GPU instance again.
func (e *Enforcer) create(ctx context.Context, b *board, p string) (gi, ci int, err error) {
	idx := strconv.Itoa(b.Index)
	out, err := e.smi(ctx, "mig", "-i", idx, "-cgi", p, "-C")
	gi, ci = -1, -1
	if m := createdGIRE.FindStringSubmatch(out); m != nil && m[2] == idx {
		gi, _ = strconv.Atoi(m[1])
	}
	if m := createdCIRE.FindStringSubmatch(out); m != nil && m[2] == idx && gi >= 0 && m[3] == strconv.Itoa(gi) {
		ci, _ = strconv.Atoi(m[1])
	}
	if err == nil && (gi < 0 || ci < 0) {
		err = fmt.Errorf("nvidia-smi mig -cgi %s -C printed no %q line for GPU %s: %q", p, "Successfully created", idx, strings.TrimSpace(out))
	}
	if err != nil {
		if gi >= 0 {
			if derr := e.destroy(ctx, b, gi, max(ci, 0)); derr != nil {
				err = fmt.Errorf("%w; destroying the GPU instance %d it left also failed: %w", err, gi, derr)
			}
		}
		return -1, -1, err
	}
	return gi, ci, nil
}

// destroy removes compute instance ci and then GPU instance gi from b. What
// is already gone is success.
func (e *Enforcer) destroy(ctx context.Context, b *board, gi, ci int) error {
	idx, g := strconv.Itoa(b.Index), strconv.Itoa(gi)
	for _, args := range [][]string{
		{"mig", "-i", idx, "-dci", "-gi", g, "-ci", strconv.Itoa(ci)},
		{"mig", "-i", idx, "-dgi", "-gi", g},
	} {
		_, err := e.smi(ctx, args...)
		if err != nil && !says(err, reasonNotFound) {
			return err // "In use by another client" included
		}
	}
	if b.gis != nil {
		delete(b.gis, gi)
	}
	b.profiles = nil // free counts changed
	return nil
}
