package sshd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gpulab/gpulab/agent/internal/enforce"
)

const (
	fileSuffix = ".conf"
	// idLine starts the comment line recording one assignment in a drop-in,
	// so that Applied reads the host, not memory.
	idLine  = "# gpulab-assignment "
	envName = "CUDA_VISIBLE_DEVICES"
)

// ModeSoft is the soft mode's name, whose drop-ins say that the variable is
// not a limit.
const ModeSoft = "soft"

// FileName is the drop-in of user in mode. The prefix sorts before the
// drop-ins distributions and cloud images ship (50-cloud-init.conf,
// 60-cloudimg-settings.conf), so that this SetEnv is the first one sshd finds
// for the user.
func FileName(mode, user string) string { return filePrefix(mode) + user + fileSuffix }

func filePrefix(mode string) string { return "10-gpulab-" + mode + "-" }

// The temporary name must not end in .conf: sshd's Include glob would read a
// half-written file.
func (e *DropIns) tmpPattern() string { return ".gpulab-" + e.cfg.Mode + "-*.tmp" }

// Header is the first lines of every drop-in of mode.
func Header(mode string) string {
	h := "# Managed by gpulab-agent (" + mode + " enforcement): edits are overwritten.\n"
	if mode == ModeSoft {
		h += "# Soft: the user can change or unset this variable; it is not a limit.\n"
	}
	return h
}

// DropInConfig says whose drop-ins these are and what goes in them.
type DropInConfig struct {
	// Mode names the drop-ins (10-gpulab-<Mode>-<user>.conf), so that each
	// mode finds only its own on the host. Required.
	Mode string
	// Session, when set, returns more sshd lines for the user's Match block
	// (ForceCommand, say), given the ids of the user's assignments in this
	// mode. Each line must be a complete sshd_config keyword line.
	Session func(user string, ids []string) ([]string, error)
	// MIGDevices admits MIG device UUIDs ("MIG-…") as well as boards'. Only
	// the mig mode sets it: a MIG UUID in an assignment of another mode
	// means the control plane and the node disagree about the GPU.
	MIGDevices bool
}

// DropIns are one mode's drop-ins on the host's sshd: one file per user
// holding the GPUs of each of the user's assignments in that mode. It keeps
// the enforce.Enforcer contract, so that a mode may be just DropIns (soft) or
// compose them with limits of its own. It is safe for concurrent use.
type DropIns struct {
	srv *Server
	cfg DropInConfig

	mu sync.Mutex
}

var _ enforce.Enforcer = (*DropIns)(nil)

// NewDropIns returns the drop-ins of cfg.Mode on srv.
func NewDropIns(srv *Server, cfg DropInConfig) *DropIns {
	if cfg.Mode == "" {
		panic("sshd.NewDropIns: empty mode")
	}
	return &DropIns{srv: srv, cfg: cfg}
}

// dropIn is one user's drop-in: the GPUs of each of their soft assignments.
type dropIn struct {
	user string
	gpus map[string][]enforce.GPU // by assignment id
}

// Apply makes every new SSH session of a.LinuxUsername see a's GPUs (with
// those of the user's other soft assignments). Idempotent: when the drop-in
// already says so it runs nothing.
func (e *DropIns) Apply(ctx context.Context, a enforce.Assignment) error {
	if err := e.validate(a); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	d, err := e.read(a.LinuxUsername)
	if err != nil {
		return err
	}
	// An id moved to another user leaves its old drop-in first.
	if err := e.removeID(ctx, a.ID, a.LinuxUsername); err != nil {
		return err
	}
	gpus := slices.Clone(a.GPUs)
	slices.SortFunc(gpus, enforce.CompareGPUs)
	d.gpus[a.ID] = gpus
	return e.write(ctx, d)
}

// Remove takes assignment id out of the drop-in that holds it, and deletes
// the drop-in when no assignment of the user is left. Removing an id no
// drop-in holds succeeds without running anything.
func (e *DropIns) Remove(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.removeID(ctx, id, "")
}

// Applied lists the assignment ids the drop-ins on the host record.
func (e *DropIns) Applied(context.Context) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	all, err := e.readAll()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, d := range all {
		for id := range d.gpus {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// validate checks the names that reach the drop-in here, not only in the
// caller: they end up in sshd's configuration.
func (e *DropIns) validate(a enforce.Assignment) error {
	return enforce.CheckNames(e.cfg.Mode, a, e.cfg.MIGDevices)
}

// removeID takes id out of every drop-in except keepUser's.
func (e *DropIns) removeID(ctx context.Context, id, keepUser string) error {
	all, err := e.readAll()
	if err != nil {
		return err
	}
	for _, d := range all {
		if _, ok := d.gpus[id]; !ok || d.user == keepUser {
			continue
		}
		delete(d.gpus, id)
		if err := e.write(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

func (e *DropIns) dir() string { return e.srv.Dir() }

func (e *DropIns) fileName(user string) string { return FileName(e.cfg.Mode, user) }

// read returns user's drop-in; an empty one when there is none.
func (e *DropIns) read(user string) (*dropIn, error) {
	d := &dropIn{user: user, gpus: make(map[string][]enforce.GPU)}
	path := filepath.Join(e.dir(), e.fileName(user))
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sshd drop-in %s: %w", path, err)
	}
	for line := range strings.Lines(string(data)) {
		rest, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), idLine)
		if !ok {
			continue
		}
		id, list, _ := strings.Cut(rest, " ")
		var gpus []enforce.GPU
		for _, g := range strings.Split(list, ",") {
			index, uuid, ok := strings.Cut(g, "=")
			i, err := strconv.Atoi(index)
			if !ok || err != nil || !(enforce.GPUUUIDRE.MatchString(uuid) || enforce.MIGUUIDRE.MatchString(uuid)) {
				continue // "-" (no GPU), or an edit: the next write drops it
			}
			gpus = append(gpus, enforce.GPU{Index: i, UUID: uuid})
		}
		d.gpus[id] = gpus
	}
	return d, nil
}

func (e *DropIns) readAll() ([]*dropIn, error) {
	entries, err := os.ReadDir(e.dir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sshd drop-ins in %s: %w", e.dir(), err)
	}
	var out []*dropIn
	for _, ent := range entries {
		user, ok := strings.CutPrefix(ent.Name(), filePrefix(e.cfg.Mode))
		if !ok || !strings.HasSuffix(user, fileSuffix) || !ent.Type().IsRegular() {
			continue
		}
		user = strings.TrimSuffix(user, fileSuffix)
		if !enforce.UsernameRE.MatchString(user) {
			continue
		}
		d, err := e.read(user)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// visible is the value of CUDA_VISIBLE_DEVICES for d: the union of its GPUs,
// each UUID once, sorted by index (then UUID) so that CUDA's device 0 is the
// lowest assigned index.
func (d *dropIn) visible() string {
	var all []enforce.GPU
	for _, gs := range d.gpus {
		all = append(all, gs...)
	}
	slices.SortFunc(all, enforce.CompareGPUs)
	var uuids []string
	for _, g := range all {
		if !slices.Contains(uuids, g.UUID) {
			uuids = append(uuids, g.UUID)
		}
	}
	return strings.Join(uuids, ",")
}

// render is d's drop-in file. The id lines keep each assignment's GPUs with
// their indexes, so that a file read back renders the same.
func (e *DropIns) render(d *dropIn) ([]byte, error) {
	var session []string
	if e.cfg.Session != nil {
		var err error
		if session, err = e.cfg.Session(d.user, slices.Sorted(maps.Keys(d.gpus))); err != nil {
			return nil, fmt.Errorf("%s enforcement: sshd settings for %s: %w", e.cfg.Mode, d.user, err)
		}
	}
	var b strings.Builder
	b.WriteString(Header(e.cfg.Mode))
	for _, id := range slices.Sorted(maps.Keys(d.gpus)) {
		list := "-"
		if len(d.gpus[id]) > 0 {
			gpus := make([]string, len(d.gpus[id]))
			for i, g := range d.gpus[id] {
				gpus[i] = strconv.Itoa(g.Index) + "=" + g.UUID
			}
			list = strings.Join(gpus, ",")
		}
		fmt.Fprintf(&b, "%s%s %s\n", idLine, id, list)
	}
	fmt.Fprintf(&b, "Match User %s\n\tSetEnv %s=%s\n", d.user, envName, d.visible())
	for _, line := range session {
		if line == "" || strings.ContainsAny(line, "\n\r") {
			return nil, fmt.Errorf("%s enforcement: sshd setting %.80q is not one line", e.cfg.Mode, line)
		}
		fmt.Fprintf(&b, "\t%s\n", line)
	}
	// Ends the Match block inside this file, whatever the sshd version does
	// with a Match left open at the end of an included file.
	b.WriteString("Match all\n")
	return []byte(b.String()), nil
}

// write makes d's drop-in the host's (removing it when d holds no
// assignment): see Server.Write.
func (e *DropIns) write(ctx context.Context, d *dropIn) error {
	var want []byte
	wantEnv := ""
	if len(d.gpus) > 0 {
		var err error
		if want, err = e.render(d); err != nil {
			return err
		}
		wantEnv = envName + "=" + d.visible()
	}
	return e.srv.Write(ctx, Change{
		Name: e.fileName(d.user), TmpPattern: e.tmpPattern(), Content: want,
		User: d.user, WantSetEnv: wantEnv, Who: e.cfg.Mode,
	})
}
