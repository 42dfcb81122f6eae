package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/atomicfile"
	"github.com/gpulab/gpulab/agent/internal/enforce"
)

const (
	// unitDir is where the admin's unit drop-ins live (systemd.unit(5)).
	unitDir = "etc/systemd/system"
	// dropInName sorts after the distributions' own slice drop-ins, so that
	// these limits win over theirs.
	dropInName = "50-gpulab-cgroup.conf"
	// The temporary name must not end in .conf: a daemon-reload racing the
	// write would read a half-written file.
	tmpPattern = ".gpulab-cgroup-*.tmp"
	idLine     = "# gpulab-assignment "
	header     = "# Managed by gpulab-agent (cgroup enforcement): edits are overwritten.\n"
)

// The devices every CUDA process opens besides its GPU: the control device
// and the unified-memory ones. Terminals are added because DevicePolicy=closed
// would otherwise refuse the user's own pty to programs that reopen it.
var (
	cudaDevices     = []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}
	terminalDevices = []string{"char-pts", "/dev/tty", "/dev/ptmx"}
)

// validate checks what reaches the unit file: a newline in a name would add
// a directive of the sender's choosing.
func validate(a enforce.Assignment) error {
	if err := enforce.CheckNames(Mode, a, false); err != nil {
		return err
	}
	switch {
	case a.CPUs < 0 || a.CPUs > 1<<16:
		return fmt.Errorf("cgroup enforcement: %d CPUs is not a valid limit", a.CPUs)
	case a.RAMMB < 0 || a.RAMMB > 1<<40:
		return fmt.Errorf("cgroup enforcement: %d MiB is not a valid memory limit", a.RAMMB)
	}
	// GPUs reach the file by UUID (checked by CheckNames) and by the device
	// node the driver gives that UUID (preflight); nvidia-smi's index not at all.
	return nil
}

// entry is one assignment as its slice drop-in records it.
type entry struct {
	id, user string
	cpus     int
	ramMB    int64
	devs     []device
}

// device is one assigned GPU: its device node, found by UUID when the
// assignment was applied (preflight), and the UUID.
type device struct {
	node string // "/dev/nvidia<minor>"
	uuid string
}

func compareDeviceEntries(a, b device) int {
	if c := compareDevices(a.node, b.node); c != 0 {
		return c
	}
	return strings.Compare(a.uuid, b.uuid)
}

func (en entry) equal(o entry) bool {
	return en.id == o.id && en.user == o.user && en.cpus == o.cpus && en.ramMB == o.ramMB && slices.Equal(en.devs, o.devs)
}

// sliceDropIn is one user slice's drop-in: the assignments it enforces.
type sliceDropIn struct {
	uid     int
	entries []entry // sorted by id
}

// set records en, replacing the entry of the same id; it reports whether
// anything changed.
func (d *sliceDropIn) set(en entry) bool {
	slices.SortFunc(en.devs, compareDeviceEntries)
	i, found := slices.BinarySearchFunc(d.entries, en.id, func(x entry, id string) int { return strings.Compare(x.id, id) })
	if found {
		if d.entries[i].equal(en) {
			return false
		}
		d.entries[i] = en
		return true
	}
	d.entries = slices.Insert(d.entries, i, en)
	return true
}

// drop removes id's entry; it reports whether there was one.
func (d *sliceDropIn) drop(id string) bool {
	n := len(d.entries)
	d.entries = slices.DeleteFunc(d.entries, func(x entry) bool { return x.id == id })
	return len(d.entries) != n
}

func (e *Enforcer) sliceDir(uid int) string {
	return e.path(filepath.Join(unitDir, "user-"+strconv.Itoa(uid)+".slice.d"))
}

// readAll reads every gpulab slice drop-in on the host.
func (e *Enforcer) readAll() ([]*sliceDropIn, error) {
	matches, err := filepath.Glob(filepath.Join(e.path(unitDir), "user-*.slice.d", dropInName))
	if err != nil {
		return nil, err
	}
	var out []*sliceDropIn
	for _, m := range matches {
		uidText := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(filepath.Dir(m)), "user-"), ".slice.d")
		uid, err := strconv.Atoi(uidText)
		if err != nil {
			continue // not a user's slice: not ours
		}
		data, err := os.ReadFile(m)
		if err != nil {
			return nil, fmt.Errorf("read slice drop-in %s: %w", m, err)
		}
		d := &sliceDropIn{uid: uid}
		for line := range strings.Lines(string(data)) {
			if en, ok := parseEntry(strings.TrimSuffix(line, "\n")); ok {
				d.set(en)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// parseEntry reads "# gpulab-assignment <id> user=U cpus=N ram_mb=M gpus=nvidiaN=UUID,...",
// N being the device minor.
// A line edited out of shape is skipped: the next write drops it.
func parseEntry(line string) (entry, bool) {
	rest, ok := strings.CutPrefix(line, idLine)
	if !ok {
		return entry{}, false
	}
	f := strings.Fields(rest)
	if len(f) != 5 || !enforce.AssignmentIDRE.MatchString(f[0]) {
		return entry{}, false
	}
	en := entry{id: f[0]}
	var err1, err2 error
	en.user, _ = strings.CutPrefix(f[1], "user=")
	cpus, _ := strings.CutPrefix(f[2], "cpus=")
	ram, _ := strings.CutPrefix(f[3], "ram_mb=")
	en.cpus, err1 = strconv.Atoi(cpus)
	en.ramMB, err2 = strconv.ParseInt(ram, 10, 64)
	gpus, ok := strings.CutPrefix(f[4], "gpus=")
	if !ok || err1 != nil || err2 != nil || !enforce.UsernameRE.MatchString(en.user) {
		return entry{}, false
	}
	if gpus != "-" {
		for _, g := range strings.Split(gpus, ",") {
			name, uuid, _ := strings.Cut(g, "=")
			minor, ok := strings.CutPrefix(name, "nvidia")
			n, err := strconv.Atoi(minor)
			if !ok || err != nil || n < 0 || !enforce.GPUUUIDRE.MatchString(uuid) {
				return entry{}, false
			}
			en.devs = append(en.devs, device{node: "/dev/nvidia" + strconv.Itoa(n), uuid: uuid})
		}
	}
	return en, true
}

// render is the drop-in's content: the recorded assignments, then their
// combined limits.
func (d *sliceDropIn) render() []byte {
	var b strings.Builder
	b.WriteString(header)
	cpus, ram := 0, int64(0)
	unlimitedCPU, unlimitedRAM := false, false
	var devs []string
	for _, en := range d.entries {
		var gs []string
		for _, d := range en.devs {
			gs = append(gs, strings.TrimPrefix(d.node, "/dev/")+"="+d.uuid)
			devs = append(devs, d.node)
		}
		list := strings.Join(gs, ",")
		if list == "" {
			list = "-"
		}
		fmt.Fprintf(&b, "%s%s user=%s cpus=%d ram_mb=%d gpus=%s\n", idLine, en.id, en.user, en.cpus, en.ramMB, list)
		cpus, ram = cpus+en.cpus, ram+en.ramMB
		unlimitedCPU = unlimitedCPU || en.cpus == 0
		unlimitedRAM = unlimitedRAM || en.ramMB == 0
	}
	b.WriteString("[Slice]\n")
	if !unlimitedCPU {
		fmt.Fprintf(&b, "CPUQuota=%d%%\n", cpus*100)
	}
	if !unlimitedRAM {
		fmt.Fprintf(&b, "MemoryMax=%dM\nMemorySwapMax=0\n", ram)
	}
	b.WriteString("DevicePolicy=closed\n")
	slices.SortFunc(devs, compareDevices)
	devs = slices.Compact(devs)
	if len(devs) > 0 {
		devs = append(slices.Clone(cudaDevices), devs...)
	}
	for _, dev := range append(slices.Clone(terminalDevices), devs...) {
		fmt.Fprintf(&b, "DeviceAllow=%s rw\n", dev)
	}
	return []byte(b.String())
}

// write puts d on the host, or deletes it (and its directory, when that is
// left empty) once it holds no assignment. Unchanged content is not written.
func (e *Enforcer) write(d *sliceDropIn) error {
	dir := e.sliceDir(d.uid)
	path := filepath.Join(dir, dropInName)
	if len(d.entries) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cgroup enforcement: remove %s: %w", path, err)
		}
		_ = os.Remove(dir) // only succeeds when empty: the admin's drop-ins stay
		return nil
	}
	data := d.render()
	if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup enforcement: %w", err)
	}
	if err := atomicfile.Write(dir, dropInName, tmpPattern, data, 0o644); err != nil {
		return fmt.Errorf("cgroup enforcement: write %s: %w", path, err)
	}
	return nil
}

// compareDevices sorts /dev/nvidia2 before /dev/nvidia10.
func compareDevices(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}
