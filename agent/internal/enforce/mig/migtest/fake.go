// Package migtest is a stateful fake of nvidia-smi's MIG commands (and,
// optionally, of sshd and systemctl) behind hostexec.Runner, so that the mig
// enforcer's tests, and the reconciler's, run without root or a GPU.
//
// The fake keeps GPU instances with their default compute instance per GPU
// and answers, in nvidia-smi's documented formats (NVIDIA MIG User Guide and
// recordings of R470+ drivers):
//
//	nvidia-smi -L
//	nvidia-smi --query-gpu=<fields> --format=csv,noheader[,nounits]
//	nvidia-smi mig [-i N] -lgip | -lgi | -cgi <profiles> [-C]
//	nvidia-smi mig [-i N] -dci [-gi G] [-ci C] | -dgi [-gi G]
//
// including their failures, written to stdout with a non-zero exit as
// nvidia-smi does: "No MIG-enabled devices found.", "No GPU instances found:
// Not Found", "... : Insufficient Resources", "... : In use by another
// client", "... : Invalid Argument". Capacity is NVIDIA's documented grid of
// 7 compute slices and 8 memory slices per GPU plus each profile's instance
// limit; placement (which slices an instance starts at) is not modelled, so
// the fake admits some layouts a real GPU refuses for fragmentation.
package migtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// Profile is one GPU-instance profile of a GPU model, as -lgip lists it.
type Profile struct {
	Name    string // "3g.20gb"
	ID      int    // the profile id -cgi also accepts ("9")
	Max     int    // instances of this profile one GPU holds at most
	Compute int    // compute slices, of 7
	Memory  int    // memory slices, of 8
	GiB     string // memory as -lgip prints it ("19.50")
	SMs     int
}

// Model is a MIG-capable GPU model.
type Model struct {
	Name      string // "NVIDIA A100-SXM4-40GB"
	MemoryMiB int
	Profiles  []Profile
}

// The grid every MIG GPU (A100, A30 aside, H100, H200) is cut into.
const (
	computeSlices = 7
	memorySlices  = 8
)

// A100SXM440GB is the A100 40GB with the profiles a current driver offers.
var A100SXM440GB = Model{Name: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, Profiles: []Profile{
	{"1g.5gb", 19, 7, 1, 1, "4.75", 14},
	{"1g.5gb+me", 20, 1, 1, 1, "4.75", 14},
	{"1g.10gb", 15, 4, 1, 2, "9.62", 14},
	{"2g.10gb", 14, 3, 2, 2, "9.62", 28},
	{"3g.20gb", 9, 2, 3, 4, "19.50", 42},
	{"4g.20gb", 5, 1, 4, 4, "19.50", 56},
	{"7g.40gb", 0, 1, 7, 8, "39.25", 98},
}}

// H10080GBHBM3 is the H100 SXM 80GB.
var H10080GBHBM3 = Model{Name: "NVIDIA H100 80GB HBM3", MemoryMiB: 81559, Profiles: []Profile{
	{"1g.10gb", 19, 7, 1, 1, "9.75", 16},
	{"1g.10gb+me", 20, 1, 1, 1, "9.75", 16},
	{"1g.20gb", 15, 4, 1, 2, "19.62", 26},
	{"2g.20gb", 14, 3, 2, 2, "19.62", 32},
	{"3g.40gb", 9, 2, 3, 4, "39.50", 60},
	{"4g.40gb", 5, 1, 4, 4, "39.50", 64},
	{"7g.80gb", 0, 1, 7, 8, "79.25", 132},
}}

// GPU is one fake board.
type GPU struct {
	UUID       string
	Model      Model
	MIGEnabled bool

	gis []*gi
}

// gi is a GPU instance; ci is its default compute instance (id 0), nil once
// destroyed.
type gi struct {
	id      int
	profile Profile
	ci      *ci
}

type ci struct {
	id   int
	uuid string
}

// Fake is the fake host. Its zero value has no GPU; add them to GPUs before
// the first call. It is safe for concurrent use.
type Fake struct {
	// Bin is the nvidia-smi command name it answers to; "nvidia-smi" when
	// empty.
	Bin string
	// SSHDRoot, when set, makes the fake answer sshd -T from the drop-ins
	// under SSHDRoot/etc/ssh/sshd_config.d, and systemctl for ssh.service.
	SSHDRoot string

	mu sync.Mutex
	// GPUs are the boards, in index order.
	GPUs []*GPU
	// Missing makes nvidia-smi not installed (hostexec.ErrNotFound).
	Missing bool
	// InUse holds MIG device UUIDs a process is using: destroying their
	// compute instance fails.
	InUse map[string]bool

	calls  [][]string
	serial int // for MIG UUIDs
}

// New returns a Fake with one GPU of model m per UUID, MIG mode enabled.
func New(m Model, uuids ...string) *Fake {
	f := &Fake{InUse: make(map[string]bool)}
	for _, u := range uuids {
		f.GPUs = append(f.GPUs, &GPU{UUID: u, Model: m, MIGEnabled: true})
	}
	return f
}

// Lock runs fn with the fake locked, for a test that changes it while an
// enforcer may run.
func (f *Fake) Lock(fn func(f *Fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// Reset destroys every instance of the GPU with this UUID, as a GPU reset
// or a reboot does (MIG instances are not persistent).
func (f *Fake) Reset(uuid string) {
	f.Lock(func(f *Fake) {
		if g := f.gpu(uuid); g != nil {
			g.gis = nil
		}
	})
}

// Calls returns the commands run so far and forgets them.
func (f *Fake) Calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// Mutating reports whether argv creates or destroys MIG instances.
func Mutating(argv []string) bool {
	return slices.ContainsFunc(argv, func(a string) bool {
		return a == "-cgi" || a == "-cci" || a == "-dci" || a == "-dgi" || a == "-mig"
	})
}

// Instance is one MIG device of the fake, for assertions.
type Instance struct {
	GPU     string
	GI, CI  int
	Profile string
	UUID    string
}

// Instances lists the fake's GPU instances (CI -1 when it has none).
func (f *Fake) Instances() []Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Instance
	for _, g := range f.GPUs {
		for _, x := range g.gis {
			in := Instance{GPU: g.UUID, GI: x.id, CI: -1, Profile: x.profile.Name}
			if x.ci != nil {
				in.CI, in.UUID = x.ci.id, x.ci.uuid
			}
			out = append(out, in)
		}
	}
	return out
}

// Run implements hostexec.Runner.
func (f *Fake) Run(_ context.Context, name string, args ...string) ([]byte, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, append([]string{name}, args...))
	bin := f.Bin
	if bin == "" {
		bin = "nvidia-smi"
	}
	switch {
	case name == bin:
		if f.Missing {
			return nil, nil, fmt.Errorf("run %s: %w: exec: %q: executable file not found in $PATH", name, hostexec.ErrNotFound, name)
		}
		out, code := f.nvidiaSMI(args)
		if code != 0 {
			return []byte(out), nil, fmt.Errorf("run %s: exit status %d", name, code)
		}
		return []byte(out), nil, nil
	case f.SSHDRoot != "" && (name == "sshd" || name == "systemctl"):
		return f.sshd(name, args)
	}
	return nil, nil, fmt.Errorf("run %s: %w (the fake does not know it)", name, hostexec.ErrNotFound)
}

// nvidia-smi's exit codes (nvidia-smi(1), RETURN VALUE).
const (
	exitInvalidArgument = 2
	exitNotFound        = 6
	exitOther           = 255
)

func (f *Fake) nvidiaSMI(args []string) (string, int) {
	if len(args) == 0 {
		return "the fake prints no summary table\n", exitInvalidArgument
	}
	if len(f.GPUs) == 0 {
		return "No devices were found\n", exitNotFound
	}
	switch {
	case len(args) == 1 && (args[0] == "-L" || args[0] == "--list-gpus"):
		return f.list(), 0
	case strings.HasPrefix(args[0], "--query-gpu="):
		return f.query(args)
	case args[0] == "mig":
		return f.mig(args[1:])
	}
	return "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.\n", exitInvalidArgument
}

// migArgs are the options of one `nvidia-smi mig` call.
type migArgs struct {
	op       string // -lgip, -lgi, -cgi, -dci, -dgi
	profiles string // -cgi's list
	withCI   bool   // -C
	gpu      int    // -i; -1 = every GPU
	gi, ci   int    // -gi, -ci; -1 = all
}

func parseMIG(args []string) (migArgs, error) {
	m := migArgs{gpu: -1, gi: -1, ci: -1}
	num := func(i int) (int, error) {
		if i >= len(args) {
			return 0, errors.New("missing value")
		}
		return strconv.Atoi(args[i])
	}
	for i := 0; i < len(args); i++ {
		var err error
		switch a := args[i]; a {
		case "-lgip", "--list-gpu-instance-profiles", "-lgi", "--list-gpu-instances", "-dci", "--destroy-compute-instance", "-dgi", "--destroy-gpu-instance":
			m.op = map[string]string{"--list-gpu-instance-profiles": "-lgip", "--list-gpu-instances": "-lgi",
				"--destroy-compute-instance": "-dci", "--destroy-gpu-instance": "-dgi"}[a]
			if m.op == "" {
				m.op = a
			}
		case "-cgi", "--create-gpu-instance":
			m.op = "-cgi"
			if i++; i >= len(args) {
				return m, errors.New("-cgi without profiles")
			}
			m.profiles = args[i]
		case "-C", "--default-compute-instance":
			m.withCI = true
		case "-i", "--id":
			i++
			m.gpu, err = num(i)
		case "-gi", "--gpu-instance-id":
			i++
			m.gi, err = num(i)
		case "-ci", "--compute-instance-id":
			i++
			m.ci, err = num(i)
		default:
			return m, fmt.Errorf("unknown option %q", a)
		}
		if err != nil {
			return m, err
		}
	}
	if m.op == "" {
		return m, errors.New("no operation")
	}
	return m, nil
}

func (f *Fake) mig(args []string) (string, int) {
	m, err := parseMIG(args)
	if err != nil {
		return "Invalid combination of input arguments. Please run 'nvidia-smi mig -h' for help.\n", exitInvalidArgument
	}
	var targets []int
	for i, g := range f.GPUs {
		if (m.gpu < 0 || m.gpu == i) && g.MIGEnabled {
			targets = append(targets, i)
		}
	}
	if m.gpu >= len(f.GPUs) {
		return "No devices were found\n", exitNotFound
	}
	if len(targets) == 0 {
		return "No MIG-enabled devices found.\n", exitNotFound
	}
	switch m.op {
	case "-lgip":
		return f.profilesTable(targets), 0
	case "-lgi":
		return f.instancesTable(targets, m.gi)
	case "-cgi":
		return f.create(targets, m.profiles, m.withCI)
	case "-dci":
		return f.destroyCI(targets, m.gi, m.ci)
	default:
		return f.destroyGI(targets, m.gi)
	}
}

func (f *Fake) gpu(uuid string) *GPU {
	for _, g := range f.GPUs {
		if g.UUID == uuid {
			return g
		}
	}
	return nil
}

// free is how many more instances of p the GPU has room for.
func (g *GPU) free(p Profile) int {
	usedC, usedM, same := 0, 0, 0
	for _, x := range g.gis {
		usedC += x.profile.Compute
		usedM += x.profile.Memory
		if x.profile.ID == p.ID {
			same++
		}
	}
	return max(0, min(p.Max-same, (computeSlices-usedC)/p.Compute, (memorySlices-usedM)/p.Memory))
}

// nextID is the GPU instance id the driver would give: 0 for the whole GPU,
// else the lowest free one from 1 (real ids follow the placement).
func (g *GPU) nextID(p Profile) int {
	if p.Compute == computeSlices {
		return 0
	}
	for id := 1; ; id++ {
		if !slices.ContainsFunc(g.gis, func(x *gi) bool { return x.id == id }) {
			return id
		}
	}
}

func (m Model) profile(nameOrID string) (Profile, bool) {
	for _, p := range m.Profiles {
		if p.Name == nameOrID || strconv.Itoa(p.ID) == nameOrID {
			return p, true
		}
	}
	return Profile{}, false
}
