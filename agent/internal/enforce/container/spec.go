package container

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/enforce"
)

// Labels on every container this package creates. Applied finds the
// containers by labelAssignment; labelSpec holds the hash of the rest of the
// creation request, so that any change (GPUs, limits, image, user, or this
// package's own settings after an upgrade) recreates the container.
const (
	labelAssignment = "gpulab.assignment"
	labelUser       = "gpulab.user"
	labelSpec       = "gpulab.spec"
)

// Inside the container: the read-only mount of StateDir/<id>, and the port
// sshd listens on.
const (
	keysMount = "/etc/gpulab/ssh"
	keysFile  = "authorized_keys"
	sshPort   = "22/tcp"
)

// startScript is the container's command. A constant: nothing from the
// control plane reaches it. The state directory is mounted, not the single
// file, because a file bind mount keeps the inode it was created with and
// would not see the atomic rename that replaces the keys; sshd is pointed
// at the file through the directory instead. An image without sshd (the
// default CUDA base image) gets openssh-server installed on first start.
const startScript = `set -e
if [ ! -x /usr/sbin/sshd ]; then
  if command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
  else
    echo "gpulab: the image has no /usr/sbin/sshd and no apt-get to install it" >&2; exit 127
  fi
fi
mkdir -p /run/sshd && chmod 0755 /run/sshd
ssh-keygen -A >/dev/null
exec /usr/sbin/sshd -D -e -o AuthorizedKeysFile=` + keysMount + `/` + keysFile + ` -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no -o AuthenticationMethods=publickey`

// createBody is the POST /containers/create request.
type createBody struct {
	Image        string
	Entrypoint   []string
	Cmd          []string
	Env          []string
	Labels       map[string]string
	ExposedPorts map[string]struct{}
	HostConfig   hostConfig
}

type hostConfig struct {
	NanoCpus       int64 `json:",omitempty"`
	Memory         int64 `json:",omitempty"`
	MemorySwap     int64 `json:",omitempty"`
	ShmSize        int64 `json:",omitempty"`
	DeviceRequests []deviceRequest
	PortBindings   map[string][]portBinding
	Mounts         []mount
	RestartPolicy  restartPolicy
	CapDrop        []string
	SecurityOpt    []string
	Init           bool
	Privileged     bool
}

type deviceRequest struct {
	Driver       string
	DeviceIDs    []string
	Capabilities [][]string
}

type portBinding struct {
	HostIp   string // sic: the API spells it so
	HostPort string
}

type mount struct {
	Type     string
	Source   string
	Target   string
	ReadOnly bool
}

type restartPolicy struct {
	Name string
}

// unlimitedShm is /dev/shm's size without a memory limit. The engine's
// default, 64 MiB, breaks PyTorch's DataLoader workers, which pass batches
// through shared memory; its pages count against the container's memory
// limit like any other, so a large size grants nothing extra.
const unlimitedShm = 8 << 30

// spec returns the creation request for a and the hash it is labelled with.
func (e *Enforcer) spec(a enforce.Assignment) (*createBody, string) {
	gpus := slices.Clone(a.GPUs)
	slices.SortFunc(gpus, enforce.CompareGPUs)
	var uuids []string
	for _, g := range gpus {
		if !slices.Contains(uuids, g.UUID) {
			uuids = append(uuids, g.UUID)
		}
	}
	// Stated in the environment as well as requested: where nvidia is the
	// engine's default runtime, an image's own NVIDIA_VISIBLE_DEVICES=all
	// (the CUDA images set it) would otherwise hand a container without a
	// device request every GPU. "void" makes the runtime act as runc.
	visible := "void"
	var requests []deviceRequest
	if len(uuids) > 0 {
		visible = strings.Join(uuids, ",")
		requests = []deviceRequest{{Driver: "nvidia", DeviceIDs: uuids, Capabilities: [][]string{{"gpu"}}}}
	}
	hc := hostConfig{
		DeviceRequests: requests,
		// HostPort "" lets the engine choose a free port; 127.0.0.1 keeps
		// it off the network, reachable only through the user's jump.
		PortBindings:  map[string][]portBinding{sshPort: {{HostIp: "127.0.0.1", HostPort: ""}}},
		Mounts:        []mount{{Type: "bind", Source: e.keysDir(a.ID), Target: keysMount, ReadOnly: true}},
		RestartPolicy: restartPolicy{Name: "unless-stopped"},
		// Of the engine's default capabilities, the two a GPU user does
		// not need and that reach beyond the container: raw packets
		// (spoofing on the bridge) and creating device nodes.
		CapDrop:     []string{"MKNOD", "NET_RAW"},
		SecurityOpt: []string{"no-new-privileges:true"},
		// An init reaps the zombies the user's processes leave behind.
		Init:    true,
		ShmSize: unlimitedShm,
	}
	if a.CPUs > 0 {
		hc.NanoCpus = int64(a.CPUs) * 1e9
	}
	if a.RAMMB > 0 {
		hc.Memory = a.RAMMB << 20
		// Equal to Memory: no swap on top. The engine's default (0) would
		// allow as much swap again as memory.
		hc.MemorySwap = hc.Memory
		hc.ShmSize = min(hc.Memory/2, unlimitedShm)
	}
	body := &createBody{
		Image:      e.cfg.Image,
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{startScript},
		Env: []string{
			"NVIDIA_VISIBLE_DEVICES=" + visible,
			"NVIDIA_DRIVER_CAPABILITIES=compute,utility",
		},
		Labels:       map[string]string{labelAssignment: a.ID, labelUser: a.LinuxUsername},
		ExposedPorts: map[string]struct{}{sshPort: {}},
		HostConfig:   hc,
	}
	// json.Marshal sorts map keys, so equal requests hash equally.
	data, err := json.Marshal(body)
	if err != nil {
		panic(err) // a struct of strings and numbers always marshals
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:16])
	body.Labels[labelSpec] = hash
	return body, hash
}

// deviceIDs are the GPU UUIDs a container's inspect says it requested.
func deviceIDs(reqs []deviceRequest) []string {
	var ids []string
	for _, r := range reqs {
		ids = append(ids, r.DeviceIDs...)
	}
	return ids
}

// sshHostPort is the host port published for the container's sshd on
// 127.0.0.1, or 0.
func sshHostPort(ports map[string][]portBinding) int {
	for _, b := range ports[sshPort] {
		if p, err := strconv.Atoi(b.HostPort); err == nil && p > 0 && (b.HostIp == "127.0.0.1" || b.HostIp == "") {
			return p
		}
	}
	return 0
}

func containerName(id string) string { return "gpulab-" + id }

func (e *Enforcer) keysDir(id string) string { return filepath.Join(e.cfg.StateDir, id) }

// session is the drop-ins' Session hook: the sshd lines that make the
// user's host account a jump host to their containers' sshd and nothing
// else. ports holds the published port of each running container by id.
func (e *Enforcer) session(user string, ids []string) ([]string, error) {
	var ports []int
	for _, id := range ids {
		if p, ok := e.ports[id]; ok && !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	slices.Sort(ports)
	permit := "PermitOpen none"
	if len(ports) > 0 {
		var hosts []string
		for _, p := range ports {
			hosts = append(hosts, "127.0.0.1:"+strconv.Itoa(p))
		}
		permit = "PermitOpen " + strings.Join(hosts, " ")
	}
	return []string{
		// ssh -J opens a direct-tcpip channel, which is no session: the
		// ForceCommand below does not stand in its way.
		"AllowTcpForwarding local",
		permit,
		"AllowAgentForwarding no",
		"AllowStreamLocalForwarding no",
		"PermitTunnel no",
		"PermitTTY no",
		"X11Forwarding no",
		"PermitUserRC no",
		"ForceCommand " + forceCommand(user, ports),
	}, nil
}

// forceCommand prints how to connect. sshd hands it to the user's shell with
// -c, so the text is single-quoted and holds only letters, digits, spaces
// and . : @ - (user names are [a-z0-9_-], ports digits): no character any
// shell (sh, bash, zsh, fish, csh's ! history) treats specially there.
func forceCommand(user string, ports []int) string {
	msg := "gpulab: this account only forwards to your GPU container and its sshd is not running yet - try again in a minute"
	if len(ports) > 0 {
		list := make([]string, len(ports))
		for i, p := range ports {
			list[i] = strconv.Itoa(p)
		}
		port := list[0]
		if len(list) > 1 {
			port = "PORT"
		}
		msg = fmt.Sprintf("gpulab: this account only forwards to your GPU container - connect with: ssh -J %s@THIS-HOST -p %s root@127.0.0.1", user, port)
		if len(list) > 1 {
			msg += " - PORT is one of " + strings.Join(list, " ")
		}
	}
	return "echo '" + msg + "'"
}
