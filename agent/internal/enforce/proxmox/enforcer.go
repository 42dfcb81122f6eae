package proxmox

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// Enforcer is the enforce.Enforcer that gives each assignment an
// unprivileged LXC of its own on this PVE node. It is safe for concurrent
// use; calls are serialized, since two creates racing for /cluster/nextid
// would collide.
type Enforcer struct {
	host      hostexec.Host
	c         *Client
	cfg       Config
	deviceFor func(enforce.GPU) (string, error)

	mu sync.Mutex
	// creating holds the create task of an assignment whose end this agent
	// has not seen (a cancelled wait): until it ends the CT has no marker
	// yet, and a second create would make a second CT.
	creating map[string]string
}

var _ enforce.Enforcer = (*Enforcer)(nil)

// New validates cfg and returns the Enforcer of host h, the PVE node whose
// pct it runs (see pct for why not the API). It does not call the API, so an
// agent starts while pveproxy is down; the first Apply says what is wrong.
func New(h hostexec.Host, cfg Config) (*Enforcer, error) {
	if !cfg.validated() {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	c, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	e := &Enforcer{host: h.WithDefaults(), c: c, cfg: cfg, deviceFor: cfg.DeviceFor, creating: map[string]string{}}
	if e.deviceFor == nil {
		e.deviceFor = indexDevice
	}
	return e, nil
}

// setDevices runs `pct set <vmid> args...` (see pct for why not
// the API).
func (e *Enforcer) setDevices(ctx context.Context, vmid int, args []string) error {
	return e.pct(ctx, fmt.Sprintf("set the GPUs of CT %d", vmid), append([]string{"set", strconv.Itoa(vmid)}, args...)...)
}

// managedCT is a CT on this node that carries the agent's marker.
type managedCT struct {
	vmid         int
	status, lock string
	id, user     string
	conf         CTConfig
}

// scan lists the agent's CTs on this node: the tag narrows the list, the
// config's description line decides.
func (e *Enforcer) scan(ctx context.Context) ([]managedCT, error) {
	cts, err := e.c.CTs(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the CTs of Proxmox node %s: %w", e.c.node, err)
	}
	slices.SortFunc(cts, func(a, b CTSummary) int { return int(a.VMID - b.VMID) })
	var out []managedCT
	for _, ct := range cts {
		if !hasTag(ct.Tags, Tag) {
			continue
		}
		conf, err := e.c.CTConfig(ctx, int(ct.VMID))
		if err != nil {
			return nil, fmt.Errorf("read the config of CT %d: %w", ct.VMID, err)
		}
		id, user, ok := marker(conf["tags"], conf["description"])
		if !ok {
			continue
		}
		out = append(out, managedCT{vmid: int(ct.VMID), status: ct.Status, lock: conf["lock"], id: id, user: user, conf: conf})
	}
	return out, nil
}

func find(cts []managedCT, id string) *managedCT {
	for i := range cts {
		if cts[i].id == id {
			return &cts[i]
		}
	}
	return nil
}

func validate(a enforce.Assignment) error {
	switch {
	case !idRE.MatchString(a.ID):
		return fmt.Errorf("assignment id %q cannot name a Proxmox CT (letters, digits and '-' only)", a.ID)
	case !enforce.UsernameRE.MatchString(a.LinuxUsername):
		return fmt.Errorf("assignment %s: username %q cannot name a Proxmox user", a.ID, a.LinuxUsername)
	case a.CPUs < 0:
		return fmt.Errorf("assignment %s: negative CPU count %d", a.ID, a.CPUs)
	case a.RAMMB < 0 || (a.RAMMB > 0 && a.RAMMB < 16):
		return fmt.Errorf("assignment %s: memory %d MiB is below Proxmox's minimum of 16 MiB", a.ID, a.RAMMB)
	}
	for _, k := range a.SSHKeys {
		if k == "" || strings.ContainsAny(k, "\r\n") {
			return fmt.Errorf("assignment %s: an SSH key is empty or spans lines", a.ID)
		}
	}
	return nil
}

// Apply implements enforce.Enforcer. It reads everything and works out the
// whole change before the first write, so a refusal changes nothing.
func (e *Enforcer) Apply(ctx context.Context, a enforce.Assignment) error {
	if err := validate(a); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.settleCreate(ctx, a.ID); err != nil {
		return err
	}
	userid := pveUser(a.LinuxUsername)
	users, err := e.c.Users(ctx)
	if err != nil {
		return fmt.Errorf("list Proxmox users: %w", err)
	}
	i := slices.IndexFunc(users, func(u User) bool { return u.UserID == userid })
	if i >= 0 && !strings.Contains(users[i].Comment, UserComment) {
		return fmt.Errorf("Proxmox user %s exists and is not managed by gpulab-agent (its comment lacks %q): rename or remove it, or add that comment to hand it over", userid, UserComment)
	}
	cts, err := e.scan(ctx)
	if err != nil {
		return err
	}
	ct := find(cts, a.ID)
	if ct != nil && ct.user != a.LinuxUsername {
		return fmt.Errorf("CT %d of assignment %s belongs to %s, not %s: end the assignment and create it again", ct.vmid, a.ID, ct.user, a.LinuxUsername)
	}
	if ct != nil && ct.lock != "" {
		return fmt.Errorf("CT %d of assignment %s is locked (%s) by another Proxmox operation; will retry", ct.vmid, a.ID, ct.lock)
	}
	memDefault := e.cfg.DefaultMemoryMB
	if a.RAMMB == 0 && memDefault == 0 {
		if memDefault, err = e.c.NodeMemoryMB(ctx); err != nil {
			return fmt.Errorf("read the memory of Proxmox node %s: %w", e.c.node, err)
		}
	}
	want, err := e.desired(a, memDefault)
	if err != nil {
		return fmt.Errorf("assignment %s: %w", a.ID, err)
	}

	if i < 0 {
		if err := e.c.CreateUser(ctx, userid, UserComment); err != nil {
			return fmt.Errorf("create Proxmox user %s: %w", userid, err)
		}
	}
	var vmid int
	running := false
	pushKeys := false // the CT's authorized_keys differ from a.SSHKeys
	if ct == nil {
		if vmid, err = e.create(ctx, a, want); err != nil {
			return err
		}
	} else {
		vmid, running = ct.vmid, ct.status == "running"
		cur := currentSpec(ct.conf)
		pushKeys = cur.keys != want.keys
		if params := updateParams(cur, want); params != nil {
			if err := e.c.UpdateCT(ctx, vmid, params); err != nil {
				return fmt.Errorf("update CT %d of assignment %s: %w", vmid, a.ID, err)
			}
		}
		args := devArgs(cur, want)
		if args != nil {
			if err := e.setDevices(ctx, vmid, args); err != nil {
				return err
			}
		}
		devsChanged := args != nil
		// A running CT takes cores and memory at once (PVE writes its
		// cgroup), devices only when it starts: a GPU taken away must be
		// gone now, so the CT restarts.
		if devsChanged && running {
			if err := e.c.run(ctx, fmt.Sprintf("stop CT %d to change its GPUs", vmid), func() (string, error) { return e.c.StopCT(ctx, vmid) }); err != nil {
				return err
			}
			running = false
		}
	}
	if !running {
		if err := e.c.run(ctx, fmt.Sprintf("start CT %d of assignment %s", vmid, a.ID), func() (string, error) { return e.c.StartCT(ctx, vmid) }); err != nil {
			return err
		}
	}
	// pct push needs the CT running, so the keys go in after the start.
	if pushKeys {
		if err := e.pushKeys(ctx, vmid, a.ID, ct.conf["description"], a.SSHKeys); err != nil {
			return err
		}
	}
	return e.grant(ctx, vmid, userid)
}

// create makes the assignment's CT and returns its vmid. The CT is created
// stopped; Apply starts it.
func (e *Enforcer) create(ctx context.Context, a enforce.Assignment, want spec) (int, error) {
	vmid, err := e.c.NextID(ctx)
	if err != nil {
		return 0, fmt.Errorf("get a free vmid for assignment %s: %w", a.ID, err)
	}
	v := url.Values{
		"vmid":         {strconv.Itoa(vmid)},
		"ostemplate":   {e.cfg.OSTemplate},
		"hostname":     {hostname(a.ID)},
		"rootfs":       {e.cfg.Storage + ":" + strconv.Itoa(e.cfg.RootfsGB)},
		"net0":         {"name=eth0,bridge=" + e.cfg.Bridge + ",ip=dhcp"},
		"unprivileged": {"1"},
		"tags":         {Tag},
		"description":  {description(a)},
	}
	if len(a.SSHKeys) > 0 {
		v.Set("ssh-public-keys", strings.Join(a.SSHKeys, "\n")+"\n")
	}
	want.createParams(v)
	what := fmt.Sprintf("create CT %d for assignment %s", vmid, a.ID)
	upid, err := e.c.CreateCT(ctx, v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	e.creating[a.ID] = upid
	err = e.c.WaitTask(ctx, upid)
	var te *TaskError
	if err == nil || errors.As(err, &te) {
		delete(e.creating, a.ID) // the task ended; PVE removes a CT it failed to create
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	// Devices after the create: a token may not pass them (see pct).
	// Should this fail, the next Apply finds the CT stopped and without
	// them, and sets them before it starts the CT.
	if args := devArgs(spec{}, want); args != nil {
		if err := e.setDevices(ctx, vmid, args); err != nil {
			return 0, err
		}
	}
	return vmid, nil
}

// settleCreate makes a call wait for a create task an earlier call stopped
// waiting for.
func (e *Enforcer) settleCreate(ctx context.Context, id string) error {
	upid, ok := e.creating[id]
	if !ok {
		return nil
	}
	st, err := e.c.TaskStatus(ctx, upid)
	if err != nil {
		return fmt.Errorf("check the create task of assignment %s: %w", id, err)
	}
	if st.Status != "stopped" {
		return fmt.Errorf("the CT of assignment %s is still being created (task %s); will check again", id, upid)
	}
	delete(e.creating, id)
	return nil
}

// grant gives the user PVEVMUser on the CT unless the ACL already does.
func (e *Enforcer) grant(ctx context.Context, vmid int, userid string) error {
	acls, err := e.c.ACLs(ctx)
	if err != nil {
		return fmt.Errorf("list Proxmox ACLs: %w", err)
	}
	path := vmidPath(vmid)
	if slices.ContainsFunc(acls, func(x ACL) bool {
		return x.Path == path && x.RoleID == acceptRole && x.Type == "user" && x.UGID == userid
	}) {
		return nil
	}
	if err := e.c.GrantUser(ctx, path, acceptRole, userid); err != nil {
		return fmt.Errorf("grant %s %s on CT %d: %w", userid, acceptRole, vmid, err)
	}
	return nil
}

// Remove implements enforce.Enforcer: it stops and destroys the CT, then
// deletes the PVE user unless another CT still uses it. Users are
// cluster-wide, so "another CT" includes other nodes' CTs, which the user's
// ACLs record.
func (e *Enforcer) Remove(ctx context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.settleCreate(ctx, id); err != nil {
		return err
	}
	cts, err := e.scan(ctx)
	if err != nil {
		return err
	}
	ct := find(cts, id)
	if ct == nil {
		return nil
	}
	if ct.status == "running" {
		if err := e.c.run(ctx, fmt.Sprintf("stop CT %d of assignment %s", ct.vmid, id), func() (string, error) { return e.c.StopCT(ctx, ct.vmid) }); err != nil {
			return err
		}
	}
	if err := e.c.run(ctx, fmt.Sprintf("destroy CT %d of assignment %s", ct.vmid, id), func() (string, error) { return e.c.DestroyCT(ctx, ct.vmid) }); err != nil {
		return err
	}
	if !enforce.UsernameRE.MatchString(ct.user) {
		return nil // a marker edited by hand names no user the agent made
	}
	for _, other := range cts {
		if other.vmid != ct.vmid && other.user == ct.user {
			return nil
		}
	}
	userid := pveUser(ct.user)
	acls, err := e.c.ACLs(ctx)
	if err != nil {
		return fmt.Errorf("list Proxmox ACLs: %w", err)
	}
	if slices.ContainsFunc(acls, func(x ACL) bool {
		return x.Type == "user" && x.UGID == userid && x.Path != vmidPath(ct.vmid)
	}) {
		return nil
	}
	users, err := e.c.Users(ctx)
	if err != nil {
		return fmt.Errorf("list Proxmox users: %w", err)
	}
	if !slices.ContainsFunc(users, func(u User) bool { return u.UserID == userid && strings.Contains(u.Comment, UserComment) }) {
		return nil
	}
	if err := e.c.DeleteUser(ctx, userid); err != nil {
		return fmt.Errorf("delete Proxmox user %s: %w", userid, err)
	}
	return nil
}

// Applied implements enforce.Enforcer: the ids in the marked CTs of this
// node.
func (e *Enforcer) Applied(ctx context.Context) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cts, err := e.scan(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(cts))
	for _, ct := range cts {
		if !slices.Contains(ids, ct.id) {
			ids = append(ids, ct.id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}
