package proxmox

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/gpu"
)

// The markers that make a PVE object the agent's. A CT is the agent's only
// with both the tag and the description line; a user only with the comment.
// Nothing without them is ever changed or deleted.
const (
	Tag         = "gpulab"
	UserComment = "managed by gpulab-agent"

	assignmentLine = "gpulab-assignment "
	userLine       = "gpulab-user "
	// acceptRole lets the user see, console into and power-cycle the CT in
	// PVE's GUI, and not reconfigure it (PVE's built-in PVEVMUser role).
	acceptRole = "PVEVMUser"
)

// controlDevices are the NVIDIA driver's device nodes every CUDA process
// opens besides its GPUs' /dev/nvidiaN: the control device and the unified
// memory devices.
var controlDevices = []string{"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}

// idRE admits the assignment ids the agent may put in a hostname and a
// description line (UUIDs, and the like).
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

func pveUser(linuxUser string) string { return linuxUser + "@pve" }

func hostname(id string) string {
	h := strings.ToLower(id[:min(8, len(id))])
	return "gpulab-" + strings.Trim(h, "-")
}

func description(a enforce.Assignment) string {
	return assignmentLine + a.ID + "\n" + userLine + a.LinuxUsername + "\n" + keysLine + keysDigest(a.SSHKeys) + "\n" +
		"Managed by gpulab-agent: it deletes this CT when the assignment ends, and undoes changes to cores, memory and devices.\n"
}

// marker reads the assignment id and user from a CT's tags and description;
// ok is false for a CT that is not the agent's.
func marker(tags, desc string) (id, user string, ok bool) {
	if !hasTag(tags, Tag) {
		return "", "", false
	}
	for line := range strings.Lines(desc) {
		line = strings.TrimSpace(line)
		if v, found := strings.CutPrefix(line, assignmentLine); found && id == "" {
			id = strings.TrimSpace(v)
		}
		if v, found := strings.CutPrefix(line, userLine); found && user == "" {
			user = strings.TrimSpace(v)
		}
	}
	return id, user, idRE.MatchString(id)
}

// hasTag: PVE stores tags separated by ';' (and accepts ',' and spaces).
func hasTag(tags, tag string) bool {
	return slices.Contains(strings.FieldsFunc(tags, func(r rune) bool { return r == ';' || r == ',' || r == ' ' }), tag)
}

// spec is what the agent keeps equal between an assignment and its CT.
type spec struct {
	cores    int // 0: not set, every host CPU
	memoryMB int64
	devs     map[int]string // devN -> host device path
	keys     string         // keysDigest of root's authorized_keys; "" unknown
}

func (e *Enforcer) desired(a enforce.Assignment, defaultMemMB int64) (spec, error) {
	s := spec{cores: a.CPUs, memoryMB: a.RAMMB, devs: map[int]string{}, keys: keysDigest(a.SSHKeys)}
	if s.memoryMB == 0 {
		s.memoryMB = defaultMemMB
	}
	gpus := slices.Clone(a.GPUs)
	slices.SortFunc(gpus, enforce.CompareGPUs)
	var paths []string
	for _, g := range gpus {
		p, err := e.deviceFor(g)
		if err != nil {
			return spec{}, err
		}
		if !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	}
	// Without a GPU the control devices would only widen what the CT can
	// reach, so they come with the first GPU.
	if len(paths) > 0 {
		paths = append(paths, controlDevices...)
	}
	for i, p := range paths {
		s.devs[i] = p
	}
	return s, nil
}

func indexDevice(g enforce.GPU) (string, error) {
	if g.Index < 0 {
		return "", fmt.Errorf("GPU %s has no index", g.UUID)
	}
	return "/dev/nvidia" + strconv.Itoa(g.Index), nil
}

func currentSpec(conf CTConfig) spec {
	s := spec{devs: map[int]string{}, keys: recordedKeys(conf["description"])}
	s.cores, _ = strconv.Atoi(conf["cores"])
	mem, _ := strconv.ParseFloat(conf["memory"], 64)
	s.memoryMB = int64(mem)
	for k, v := range conf {
		n, ok := strings.CutPrefix(k, "dev")
		i, err := strconv.Atoi(n)
		if !ok || err != nil {
			continue
		}
		// "[[path=]<Path>][,deny-write=..][,gid=..][,mode=..][,uid=..]":
		// the path decides; options an admin added are left alone.
		p, _, _ := strings.Cut(v, ",")
		s.devs[i] = strings.TrimPrefix(p, "path=")
	}
	return s
}

// createParams are the spec's options for POST /nodes/{node}/lxc, devices
// aside (see devArgs).
func (s spec) createParams(v url.Values) {
	if s.cores > 0 {
		v.Set("cores", strconv.Itoa(s.cores))
	}
	v.Set("memory", strconv.FormatInt(s.memoryMB, 10))
}

// updateParams are the options for PUT .../config that give cur want's
// cores and memory, nil when they are equal. Keys are not among them: they
// are pushed into the running CT first (Enforcer.pushKeys).
func updateParams(cur, want spec) url.Values {
	v := url.Values{}
	if cur.cores != want.cores {
		if want.cores == 0 {
			v.Set("delete", "cores")
		} else {
			v.Set("cores", strconv.Itoa(want.cores))
		}
	}
	if cur.memoryMB != want.memoryMB {
		v.Set("memory", strconv.FormatInt(want.memoryMB, 10))
	}
	if len(v) == 0 {
		return nil
	}
	return v
}

// devArgs are the `pct set` options that give cur want's devices, nil when
// they are equal.
func devArgs(cur, want spec) []string {
	var args, del []string
	for _, i := range slices.Sorted(maps.Keys(want.devs)) {
		if p := want.devs[i]; cur.devs[i] != p {
			args = append(args, "--dev"+strconv.Itoa(i), p)
		}
	}
	for _, i := range slices.Sorted(maps.Keys(cur.devs)) {
		if _, ok := want.devs[i]; !ok {
			del = append(del, "dev"+strconv.Itoa(i))
		}
	}
	if len(del) > 0 {
		args = append(args, "--delete", strings.Join(del, ","))
	}
	return args
}

// DeviceFromProc returns a Config.DeviceFor that finds each GPU's device
// node by UUID in the driver's /proc under root ("/" on the host), as
// gpu.DeviceNode does: the minor number, not nvidia-smi's index, names a
// GPU's /dev/nvidiaN.
func DeviceFromProc(root string) func(enforce.GPU) (string, error) {
	return func(g enforce.GPU) (string, error) { return gpu.DeviceNode(root, g.UUID) }
}
