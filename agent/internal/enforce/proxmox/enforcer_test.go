package proxmox

import (
	"context"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/enforcetest"
	"github.com/gpulab/gpulab/agent/internal/enforce/proxmox/pvetest"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

const (
	template = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
	idA      = "6f1c1d2e-8a4b-4f7e-9b7a-2d7f0e3c5a11"
	idB      = "0b2d4f60-1111-4222-8333-944455566677"
	keyA     = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGc8yQ2Z alice@laptop"
	keyB     = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= alice@desk"
)

func testConfig(s *pvetest.Server) Config {
	return Config{URL: s.APIURL(), TokenID: pvetest.TokenID, Secret: pvetest.Secret, Node: pvetest.Node,
		OSTemplate: template, TLSFingerprint: s.Fingerprint()}
}

// testHost is a node whose pct is the fake PVE's.
func testHost(s *pvetest.Server) hostexec.Host { return hostexec.Host{Runner: s.Pct()} }

// newHost returns a fake PVE and an Enforcer over it, polling tasks every
// millisecond or so.
func newHost(t *testing.T, edit ...func(*hostexec.Host, *Config)) (*pvetest.Server, *Enforcer) {
	t.Helper()
	s := pvetest.New(t)
	h, cfg := testHost(s), testConfig(s)
	for _, f := range edit {
		f(&h, &cfg)
	}
	e, err := New(h, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.c.pollMin, e.c.pollMax = time.Millisecond, 4*time.Millisecond
	return s, e
}

func gpuAssignment(id, user string, cpus int, ramMB int64, gpus ...int) enforce.Assignment {
	a := enforce.Assignment{ID: id, LinuxUsername: user, CPUs: cpus, RAMMB: ramMB}
	for _, i := range gpus {
		a.GPUs = append(a.GPUs, enforce.GPU{Index: i, UUID: "GPU-00000000-0000-0000-0000-00000000000" + string(rune('0'+i))})
	}
	return a
}

func mustApply(t *testing.T, e *Enforcer, a enforce.Assignment) {
	t.Helper()
	if err := e.Apply(context.Background(), a); err != nil {
		t.Fatalf("Apply(%s): %v", a.ID, err)
	}
}

// calls prints requests as "METHOD path" for comparison.
func calls(rs []pvetest.Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

func formOf(t *testing.T, rs []pvetest.Request, method, path string) url.Values {
	t.Helper()
	for _, r := range rs {
		if r.Method == method && r.Path == path {
			return r.Form
		}
	}
	t.Fatalf("no %s %s among %q", method, path, calls(rs))
	return nil
}

func TestProxmoxKeepsTheEnforcerContract(t *testing.T) {
	enforcetest.Conformance(t, func(t *testing.T) enforce.Enforcer { _, e := newHost(t); return e })
}

func TestApplyCreatesAnUnprivilegedCTWithTheAssignedGPU(t *testing.T) {
	s, e := newHost(t)
	a := gpuAssignment(idA, "alice", 8, 65536, 2)
	a.SSHKeys = []string{keyA, keyB}
	mustApply(t, e, a)

	rs := s.Requests()
	want := []string{"POST /access/users", "POST /nodes/pve1/lxc", "CLI pct set 100", "POST /nodes/pve1/lxc/100/status/start", "PUT /access/acl"}
	if got := calls(pvetest.Mutations(rs)); !slices.Equal(got, want) {
		t.Errorf("mutations = %q, want %q", got, want)
	}
	f := formOf(t, rs, "POST", "/nodes/pve1/lxc")
	for k, v := range map[string]string{
		"vmid": "100", "ostemplate": template, "hostname": "gpulab-6f1c1d2e", "cores": "8", "memory": "65536",
		"rootfs": "local-lvm:16", "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "unprivileged": "1", "tags": "gpulab",
		"ssh-public-keys": keyA + "\n" + keyB + "\n",
	} {
		if got := f.Get(k); got != v {
			t.Errorf("create %s = %q, want %q", k, got, v)
		}
	}
	// Devices go through pct: PVE refuses them from a token.
	devs := formOf(t, rs, "CLI", "pct set 100")
	if want := (url.Values{"dev0": {"/dev/nvidia2"}, "dev1": {"/dev/nvidiactl"}, "dev2": {"/dev/nvidia-uvm"}, "dev3": {"/dev/nvidia-uvm-tools"}}); !maps.EqualFunc(devs, want, slices.Equal) {
		t.Errorf("pct set %v, want only the assigned GPU and the control devices %v", devs, want)
	}
	if ct, _ := s.CT(100); ct.Config["dev0"] != "/dev/nvidia2" {
		t.Errorf("CT dev0 = %q, want /dev/nvidia2", ct.Config["dev0"])
	}
	if d := f.Get("description"); !strings.Contains(d, "gpulab-assignment "+idA+"\n") || !strings.Contains(d, "gpulab-user alice\n") {
		t.Errorf("create description %q lacks the marker lines", d)
	}
	// The create writes the keys and records which: no push follows.
	if d := f.Get("description"); !strings.Contains(d, "\ngpulab-keys "+sha(keyA+"\n"+keyB+"\n")+"\n") {
		t.Errorf("create description %q lacks the keys' digest", d)
	}
	if k, _ := s.CTFile(100, "/root/.ssh/authorized_keys"); k.Content != keyA+"\n"+keyB+"\n" {
		t.Errorf("authorized_keys = %q, want both keys", k.Content)
	}

	if u, ok := s.User("alice@pve"); !ok || u.Comment != UserComment {
		t.Errorf("user alice@pve = %+v, %v; want it with comment %q", u, ok, UserComment)
	}
	if acls := s.ACLs(); !slices.Contains(acls, pvetest.ACL{Path: "/vms/100", RoleID: "PVEVMUser", Type: "user", UGID: "alice@pve"}) {
		t.Errorf("ACLs = %+v, want PVEVMUser for alice@pve on /vms/100", acls)
	}
	ct, _ := s.CT(100)
	if ct.Status != "running" || ct.Config["lock"] != "" {
		t.Errorf("CT 100 status %q lock %q, want running and unlocked", ct.Status, ct.Config["lock"])
	}
}

func TestRepeatedApplyMakesNoMutatingRequest(t *testing.T) {
	s, e := newHost(t)
	a := gpuAssignment(idA, "alice", 8, 65536, 0)
	mustApply(t, e, a)
	s.Requests()
	mustApply(t, e, a)
	rs := s.Requests()
	if m := pvetest.Mutations(rs); len(m) != 0 {
		t.Errorf("second Apply made %q", calls(m))
	}
	if len(rs) == 0 {
		t.Error("second Apply read nothing: it cannot have checked the host")
	}
}

func TestApplyStartsAStoppedCT(t *testing.T) {
	s, e := newHost(t)
	a := gpuAssignment(idA, "alice", 8, 65536, 0)
	mustApply(t, e, a)
	s.SetCTStatus(100, "stopped") // rebooted host, or an admin's pct stop
	s.Requests()
	mustApply(t, e, a)
	if got, want := calls(pvetest.Mutations(s.Requests())), []string{"POST /nodes/pve1/lxc/100/status/start"}; !slices.Equal(got, want) {
		t.Errorf("mutations = %q, want %q", got, want)
	}
	if ct, _ := s.CT(100); ct.Status != "running" {
		t.Errorf("CT status = %q, want running", ct.Status)
	}
}

func TestRemoveDestroysTheCTAndTheUser(t *testing.T) {
	s, e := newHost(t)
	mustApply(t, e, gpuAssignment(idA, "alice", 8, 65536, 0))
	s.Requests()
	if err := e.Remove(context.Background(), idA); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	rs := s.Requests()
	want := []string{"POST /nodes/pve1/lxc/100/status/stop", "DELETE /nodes/pve1/lxc/100", "DELETE /access/users/alice@pve"}
	if got := calls(pvetest.Mutations(rs)); !slices.Equal(got, want) {
		t.Errorf("mutations = %q, want %q", got, want)
	}
	if f := formOf(t, rs, "DELETE", "/nodes/pve1/lxc/100"); f.Get("purge") != "1" {
		t.Errorf("destroy purge = %q, want 1", f.Get("purge"))
	}
	if ids := s.CTIDs(); len(ids) != 0 {
		t.Errorf("CTs left: %v", ids)
	}
	if _, ok := s.User("alice@pve"); ok {
		t.Error("user alice@pve is left")
	}
}

func TestRemoveKeepsAUserStillInUse(t *testing.T) {
	s, e := newHost(t)
	mustApply(t, e, gpuAssignment(idA, "alice", 8, 65536, 0))
	mustApply(t, e, gpuAssignment(idB, "alice", 8, 65536, 1))
	if err := e.Remove(context.Background(), idA); err != nil {
		t.Fatalf("Remove A: %v", err)
	}
	if _, ok := s.User("alice@pve"); !ok {
		t.Fatal("alice@pve deleted while CT 101 still belongs to her")
	}
	if ids := s.CTIDs(); !slices.Equal(ids, []int{101}) {
		t.Errorf("CTs = %v, want [101]", ids)
	}
	// Users are cluster-wide: an ACL on another node's CT keeps her too.
	s.AddACL(pvetest.ACL{Path: "/vms/777", RoleID: "PVEVMUser", Type: "user", UGID: "alice@pve"})
	if err := e.Remove(context.Background(), idB); err != nil {
		t.Fatalf("Remove B: %v", err)
	}
	if _, ok := s.User("alice@pve"); !ok {
		t.Error("alice@pve deleted while she holds a CT on another node")
	}
}

func TestForeignUsersAndCTsAreNeverTouched(t *testing.T) {
	s, e := newHost(t)
	s.AddUser(pvetest.User{UserID: "bob@pve", Comment: "lab admin"})
	// Untagged, though its description has the marker; and tagged, without it.
	s.AddCT(pvetest.CT{VMID: 100, Status: "running", Config: map[string]string{"hostname": "db", "description": "gpulab-assignment " + idA + "\n"}})
	s.AddCT(pvetest.CT{VMID: 101, Status: "running", Config: map[string]string{"hostname": "web", "tags": "gpulab;prod"}})
	s.Requests()

	err := e.Apply(context.Background(), gpuAssignment(idB, "bob", 1, 1024))
	if err == nil || !strings.Contains(err.Error(), "bob@pve exists and is not managed by gpulab-agent") {
		t.Errorf("Apply for bob = %v, want a refusal naming the unmanaged user", err)
	}
	if m := pvetest.Mutations(s.Requests()); len(m) != 0 {
		t.Errorf("refused Apply made %q", calls(m))
	}
	if err := e.Remove(context.Background(), idA); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if got, _ := e.Applied(context.Background()); len(got) != 0 {
		t.Errorf("Applied = %q, want none of the foreign CTs", got)
	}
	if m := pvetest.Mutations(s.Requests()); len(m) != 0 {
		t.Errorf("Remove and Applied made %q", calls(m))
	}
	mustApply(t, e, gpuAssignment(idA, "alice", 1, 1024))
	if ids := s.CTIDs(); !slices.Equal(ids, []int{100, 101, 102}) {
		t.Errorf("CTs = %v, want the foreign 100 and 101 and a new 102", ids)
	}
	for _, id := range []int{100, 101} {
		if ct, _ := s.CT(id); ct.Status != "running" || ct.Config["dev0"] != "" {
			t.Errorf("foreign CT %d changed: %+v", id, ct)
		}
	}
	if u, _ := s.User("bob@pve"); u.Comment != "lab admin" {
		t.Errorf("bob@pve changed: %+v", u)
	}
}

func TestFailedCreateTaskIsReportedAndLeavesNoCT(t *testing.T) {
	s, e := newHost(t)
	s.FailNextTask("vzcreate", "unable to create CT 100 - no such logical volume pve/data")
	err := e.Apply(context.Background(), gpuAssignment(idA, "alice", 1, 1024, 0))
	if err == nil || !strings.Contains(err.Error(), "no such logical volume pve/data") {
		t.Fatalf("Apply = %v, want the task's exit status", err)
	}
	if ids := s.CTIDs(); len(ids) != 0 {
		t.Errorf("CTs = %v after a failed create", ids)
	}
	mustApply(t, e, gpuAssignment(idA, "alice", 1, 1024, 0)) // the next heartbeat succeeds
}

func TestApplyRefusesBadInputBeforeAnyRequest(t *testing.T) {
	s, e := newHost(t)
	for _, a := range []enforce.Assignment{
		{ID: "../x", LinuxUsername: "alice"},
		{ID: idA, LinuxUsername: "Alice"},
		{ID: idA, LinuxUsername: "alice", RAMMB: 8},
		{ID: idA, LinuxUsername: "alice", SSHKeys: []string{keyA + "\nssh-rsa AAAA evil"}},
	} {
		if err := e.Apply(context.Background(), a); err == nil {
			t.Errorf("Apply(%+v) succeeded", a)
		}
	}
	if rs := s.Requests(); len(rs) != 0 {
		t.Errorf("refused Applys made %q", calls(rs))
	}
}

type runnerFunc func(ctx context.Context, name string, args ...string) ([]byte, []byte, error)

func (f runnerFunc) Run(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
	return f(ctx, name, args...)
}
