package soft

import (
	"bytes"
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

	"github.com/gpulab/gpulab/agent/internal/atomicfile"
	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// DropInDir is where sshd reads drop-ins, relative to Config.Root.
const DropInDir = "etc/ssh/sshd_config.d"

const (
	fileSuffix = ".conf"
	// idLine starts the comment line recording one assignment in a drop-in,
	// so that Applied reads the host, not memory.
	idLine  = "# gpulab-assignment "
	envName = "CUDA_VISIBLE_DEVICES"
)

// The drop-in's file names, by mode. The prefix sorts before the drop-ins
// distributions and cloud images ship (50-cloud-init.conf,
// 60-cloudimg-settings.conf), so that this SetEnv is the first one sshd finds
// for the user. The temporary name must not end in .conf: sshd's Include
// glob would read a half-written file.
func (e *Enforcer) filePrefix() string { return "10-gpulab-" + e.cfg.Mode + "-" }
func (e *Enforcer) tmpPattern() string { return ".gpulab-" + e.cfg.Mode + "-*.tmp" }
func (e *Enforcer) header() string {
	h := "# Managed by gpulab-agent (" + e.cfg.Mode + " enforcement): edits are overwritten.\n"
	if e.cfg.Mode == ModeSoft {
		h += "# Soft: the user can change or unset this variable; it is not a limit.\n"
	}
	return h
}

// ModeSoft is the mode name of the soft enforcer proper. The modes built on
// it (cgroup, mig, container) use their own names, so that each finds only
// its own drop-ins on the host.
const ModeSoft = "soft"

// Config says where the host's files are and which commands to run. The zero
// value, filled in by New, is the real host.
type Config struct {
	// Root prefixes DropInDir; "" is "/".
	Root string
	// Runner runs sshd and systemctl; hostexec.Exec{} when nil.
	Runner hostexec.Runner
	// Sshd and Systemctl are command names or paths; the bare names when
	// empty.
	Sshd, Systemctl string
	// Mode names the drop-ins (10-gpulab-<Mode>-<user>.conf): ModeSoft when
	// empty. Another mode that builds on this one (mig, cgroup, container)
	// passes its own name, so that its drop-ins and Applied stay apart.
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

// Enforcer is the soft mode's enforce.Enforcer. It is safe for concurrent
// use.
type Enforcer struct {
	cfg Config

	mu sync.Mutex
	// unit is the systemd unit running sshd, found on the first reload.
	unit string
	// reloadPending: a drop-in changed and sshd has not been reloaded since
	// (a failed reload, or an agent restarted after one), so an Apply that
	// finds the file already right still reloads.
	reloadPending bool
}

var _ enforce.Enforcer = (*Enforcer)(nil)

// New returns an Enforcer for cfg, with the defaults filled in.
func New(cfg Config) *Enforcer {
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.Runner == nil {
		cfg.Runner = hostexec.Exec{}
	}
	if cfg.Sshd == "" {
		cfg.Sshd = "sshd"
	}
	if cfg.Systemctl == "" {
		cfg.Systemctl = "systemctl"
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeSoft
	}
	// Pending from the start: an earlier run may have written a drop-in
	// and died before its reload. One reload per agent start is harmless.
	return &Enforcer{cfg: cfg, reloadPending: true}
}

// dropIn is one user's drop-in: the GPUs of each of their soft assignments.
type dropIn struct {
	user string
	gpus map[string][]enforce.GPU // by assignment id
}

// Apply makes every new SSH session of a.LinuxUsername see a's GPUs (with
// those of the user's other soft assignments). Idempotent: when the drop-in
// already says so it runs nothing.
func (e *Enforcer) Apply(ctx context.Context, a enforce.Assignment) error {
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
func (e *Enforcer) Remove(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.removeID(ctx, id, "")
}

// Applied lists the assignment ids the drop-ins on the host record.
func (e *Enforcer) Applied(context.Context) ([]string, error) {
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
func (e *Enforcer) validate(a enforce.Assignment) error {
	return enforce.CheckNames(e.cfg.Mode, a, e.cfg.MIGDevices)
}

// removeID takes id out of every drop-in except keepUser's.
func (e *Enforcer) removeID(ctx context.Context, id, keepUser string) error {
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

func (e *Enforcer) dir() string { return filepath.Join(e.cfg.Root, DropInDir) }

func (e *Enforcer) fileName(user string) string { return e.filePrefix() + user + fileSuffix }

// read returns user's drop-in; an empty one when there is none.
func (e *Enforcer) read(user string) (*dropIn, error) {
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

func (e *Enforcer) readAll() ([]*dropIn, error) {
	entries, err := os.ReadDir(e.dir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sshd drop-ins in %s: %w", e.dir(), err)
	}
	var out []*dropIn
	for _, ent := range entries {
		user, ok := strings.CutPrefix(ent.Name(), e.filePrefix())
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
func (e *Enforcer) render(d *dropIn) ([]byte, error) {
	var session []string
	if e.cfg.Session != nil {
		var err error
		if session, err = e.cfg.Session(d.user, slices.Sorted(maps.Keys(d.gpus))); err != nil {
			return nil, fmt.Errorf("%s enforcement: sshd settings for %s: %w", e.cfg.Mode, d.user, err)
		}
	}
	var b strings.Builder
	b.WriteString(e.header())
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

// write makes d's drop-in the host's (deleting it when d holds no
// assignment), checks it with sshd and reloads sshd. Unchanged content runs
// nothing unless a reload is pending.
func (e *Enforcer) write(ctx context.Context, d *dropIn) error {
	dir, name := e.dir(), e.fileName(d.user)
	path := filepath.Join(dir, name)
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read sshd drop-in %s: %w", path, err)
	}
	existed := err == nil
	var want []byte
	if len(d.gpus) > 0 {
		if want, err = e.render(d); err != nil {
			return err
		}
	}
	if (want == nil && !existed) || (want != nil && existed && bytes.Equal(old, want)) {
		if want != nil && e.reloadPending {
			return e.checkAndReload(ctx, d.user, "")
		}
		return nil
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("sshd drop-in directory %s: %w (%s enforcement needs an sshd that includes %s/*.conf)", dir, err, e.cfg.Mode, "/"+DropInDir)
	}
	if want == nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove sshd drop-in %s: %w", path, err)
		}
		if err := atomicfile.SyncDir(dir); err != nil {
			return err
		}
	} else if err := atomicfile.Write(dir, name, e.tmpPattern(), want, 0o644); err != nil {
		return fmt.Errorf("sshd drop-in for %s: %w", d.user, err)
	}
	e.reloadPending = true
	wantEnv := ""
	if want != nil {
		wantEnv = envName + "=" + d.visible()
	}
	if err := e.checkAndReload(ctx, d.user, wantEnv); err != nil {
		// Put the old file back so that the next reload, by anyone, does
		// not read a configuration sshd refused or ignores.
		if rerr := restore(dir, name, e.tmpPattern(), old, existed); rerr != nil {
			return fmt.Errorf("%w; restoring the previous drop-in also failed: %w", err, rerr)
		}
		return err
	}
	return nil
}

func restore(dir, name, tmpPattern string, old []byte, existed bool) error {
	if existed {
		return atomicfile.Write(dir, name, tmpPattern, old, 0o644)
	}
	if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(dir)
}
