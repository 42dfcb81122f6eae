package container

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/container/dockertest"
	"github.com/gpulab/gpulab/agent/internal/enforce/enforcetest"
)

func TestContainerKeepsTheEnforcerContract(t *testing.T) {
	enforcetest.Conformance(t, func(t *testing.T) enforce.Enforcer { return newFakeHost(t).enforcer() })
}

func TestApplyCreatesAContainerWithExactlyTheAssignedGPUsAndLimits(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	// Out of index order: the device list follows the index.
	a := assignment("a-1", "alice", enforce.GPU{Index: 3, UUID: uuid1}, enforce.GPU{Index: 0, UUID: uuid0})
	if err := e.Apply(context.Background(), a); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	reqs := h.docker.Requests()
	wantCalls(t, reqs,
		"GET /_ping",
		"GET /containers/gpulab-a-1/json",
		"POST /containers/create",
		"POST /containers/gpulab-a-1/start",
		"GET /containers/gpulab-a-1/json",
		"GET /containers/json",
	)
	for _, r := range reqs[1:] {
		if r.Version != newestAPI {
			t.Errorf("%s spoke API %q, want %s", r, r.Version, newestAPI)
		}
	}
	if got := reqs[2].Query.Get("name"); got != "gpulab-a-1" {
		t.Errorf("create name = %q", got)
	}

	b, _ := h.created("gpulab-a-1")
	hc := b.HostConfig
	if hc.NanoCpus != 8_000_000_000 || hc.Memory != 65536<<20 || hc.MemorySwap != hc.Memory {
		t.Errorf("limits: NanoCpus %d, Memory %d, MemorySwap %d", hc.NanoCpus, hc.Memory, hc.MemorySwap)
	}
	wantDev := []deviceRequest{{Driver: "nvidia", DeviceIDs: []string{uuid0, uuid1}, Capabilities: [][]string{{"gpu"}}}}
	if !reflect.DeepEqual(hc.DeviceRequests, wantDev) {
		t.Errorf("DeviceRequests = %+v, want %+v", hc.DeviceRequests, wantDev)
	}
	if !slices.Contains(b.Env, "NVIDIA_VISIBLE_DEVICES="+uuid0+","+uuid1) {
		t.Errorf("Env = %q lacks the UUIDs in NVIDIA_VISIBLE_DEVICES", b.Env)
	}
	if want := map[string][]portBinding{"22/tcp": {{HostIp: "127.0.0.1", HostPort: ""}}}; !reflect.DeepEqual(hc.PortBindings, want) {
		t.Errorf("PortBindings = %+v, want sshd on 127.0.0.1 with an engine-chosen port", hc.PortBindings)
	}
	if _, ok := b.ExposedPorts["22/tcp"]; !ok {
		t.Errorf("ExposedPorts = %v", b.ExposedPorts)
	}
	wantMount := []mount{{Type: "bind", Source: filepath.Join(h.stateDir, "a-1"), Target: "/etc/gpulab/ssh", ReadOnly: true}}
	if !reflect.DeepEqual(hc.Mounts, wantMount) {
		t.Errorf("Mounts = %+v, want %+v", hc.Mounts, wantMount)
	}
	if hc.Privileged || hc.RestartPolicy.Name != "unless-stopped" || !slices.Contains(hc.CapDrop, "NET_RAW") {
		t.Errorf("Privileged %v, RestartPolicy %q, CapDrop %q", hc.Privileged, hc.RestartPolicy.Name, hc.CapDrop)
	}
	if b.Labels[labelAssignment] != "a-1" || b.Labels[labelUser] != "alice" || len(b.Labels[labelSpec]) != 32 {
		t.Errorf("Labels = %v", b.Labels)
	}
	if b.Image != DefaultImage || !strings.Contains(strings.Join(b.Cmd, " "), "exec /usr/sbin/sshd -D") ||
		!strings.Contains(strings.Join(b.Cmd, " "), "AuthorizedKeysFile=/etc/gpulab/ssh/authorized_keys") {
		t.Errorf("Image %q, Cmd %q: want sshd in the foreground reading the mounted keys", b.Image, b.Cmd)
	}

	if got := h.keys("a-1"); got != key1+"\n" {
		t.Errorf("authorized_keys = %q", got)
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(h.stateDir, "a-1"):                    0o755 | os.ModeDir,
		filepath.Join(h.stateDir, "a-1", "authorized_keys"): 0o644,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode(), err, want)
		}
	}
}

func TestAnAssignmentWithoutGPUsRequestsNoneAndHidesTheImagesDefault(t *testing.T) {
	h := newFakeHost(t)
	a := assignment("a-1", "alice")
	a.CPUs, a.RAMMB = 0, 0
	if err := h.enforcer().Apply(context.Background(), a); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	b, _ := h.created("gpulab-a-1")
	if b.HostConfig.DeviceRequests != nil || b.HostConfig.NanoCpus != 0 || b.HostConfig.Memory != 0 {
		t.Errorf("HostConfig = %+v, want no device request and no limits", b.HostConfig)
	}
	if !slices.Contains(b.Env, "NVIDIA_VISIBLE_DEVICES=void") {
		t.Errorf("Env = %q, want NVIDIA_VISIBLE_DEVICES=void", b.Env)
	}
}

func TestARepeatedApplySendsNoMutatingRequestAndRunsNothing(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	ctx := context.Background()
	a := assignment("a-1", "alice", enforce.GPU{Index: 0, UUID: uuid0})
	if err := e.Apply(ctx, a); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	h.docker.Requests()
	h.Take()
	keys := filepath.Join(h.stateDir, "a-1", "authorized_keys")
	before, _ := os.Stat(keys)
	dropIn, _ := h.dropIn("alice")

	for _, e := range []*Enforcer{e, h.enforcer()} { // this agent, then a restarted one
		if err := e.Apply(ctx, a); err != nil {
			t.Fatalf("second Apply: %v", err)
		}
		if m := h.docker.Requests(); len(dockertest.Mutating(m)) != 0 {
			t.Errorf("a repeated Apply sent %q", calls(dockertest.Mutating(m)))
		}
		if after, _ := os.Stat(keys); !os.SameFile(before, after) {
			t.Error("the keys file was rewritten")
		}
		if got, _ := h.dropIn("alice"); got != dropIn {
			t.Errorf("drop-in changed:\n%s", got)
		}
	}
	// The first enforcer ran nothing; the restarted one only its one
	// reload per start (package soft's reloadPending).
	if got := h.Take(); len(got) != 3 || got[0][0] != "sshd" {
		t.Errorf("commands = %q, want only the restarted agent's check and reload", got)
	}
}

func TestAChangedAssignmentRecreatesTheContainerAndFollowsItsPort(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	ctx := context.Background()
	a := assignment("a-1", "alice", enforce.GPU{Index: 0, UUID: uuid0}, enforce.GPU{Index: 1, UUID: uuid1})
	if err := e.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	_, old := h.created("gpulab-a-1")
	h.docker.Requests()

	a.GPUs, a.RAMMB = a.GPUs[:1], 4096
	if err := e.Apply(ctx, a); err != nil {
		t.Fatalf("Apply changed: %v", err)
	}
	wantCalls(t, dockertest.Mutating(h.docker.Requests()),
		"DELETE /containers/gpulab-a-1", "POST /containers/create", "POST /containers/gpulab-a-1/start")
	b, c := h.created("gpulab-a-1")
	if c.ID == old.ID {
		t.Error("the container was not replaced")
	}
	if ids := b.HostConfig.DeviceRequests[0].DeviceIDs; !slices.Equal(ids, []string{uuid0}) || b.HostConfig.Memory != 4096<<20 {
		t.Errorf("new container: DeviceIDs %q, Memory %d", ids, b.HostConfig.Memory)
	}
	d, _ := h.dropIn("alice")
	if !strings.Contains(d, "\tPermitOpen 127.0.0.1:32769\n") {
		t.Errorf("drop-in does not permit the new container's port 32769:\n%s", d)
	}
}

func TestChangedKeysRewriteTheFileAndLeaveTheContainer(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	ctx := context.Background()
	a := assignment("a-1", "alice")
	if err := e.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	_, old := h.created("gpulab-a-1")
	h.docker.Requests()

	a.SSHKeys = []string{key1, key2}
	if err := e.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	if m := dockertest.Mutating(h.docker.Requests()); len(m) != 0 {
		t.Errorf("a key change sent %q", calls(m))
	}
	if _, c := h.created("gpulab-a-1"); c.ID != old.ID {
		t.Error("the container was replaced")
	}
	if got := h.keys("a-1"); got != key1+"\n"+key2+"\n" {
		t.Errorf("authorized_keys = %q", got)
	}
	a.SSHKeys = nil
	if err := e.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got := h.keys("a-1"); got != "" {
		t.Errorf("authorized_keys without keys = %q, want empty", got)
	}
}

func TestAStoppedContainerIsStartedAgain(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	ctx := context.Background()
	if err := e.Apply(ctx, assignment("a-1", "alice")); err != nil {
		t.Fatal(err)
	}
	h.docker.Stop("gpulab-a-1")
	h.docker.Requests()
	if err := e.Apply(ctx, assignment("a-1", "alice")); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, dockertest.Mutating(h.docker.Requests()), "POST /containers/gpulab-a-1/start")
	if c, _ := h.docker.Container("gpulab-a-1"); !c.Running {
		t.Error("not running")
	}
	if d, _ := h.dropIn("alice"); !strings.Contains(d, "PermitOpen 127.0.0.1:32769\n") {
		t.Errorf("drop-in does not follow the port the restart got:\n%s", d)
	}
}

func TestRemoveDeletesTheContainerTheDropInAndTheKeysAndTwiceIsFine(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	ctx := context.Background()
	if err := e.Apply(ctx, assignment("a-1", "alice")); err != nil {
		t.Fatal(err)
	}
	h.docker.Requests()
	for i := range 2 {
		if err := e.Remove(ctx, "a-1"); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	reqs := h.docker.Requests()
	del := dockertest.Mutating(reqs)
	wantCalls(t, del, "DELETE /containers/gpulab-a-1", "DELETE /containers/gpulab-a-1")
	if q := del[0].Query; q.Get("force") != "true" || q.Get("v") != "true" {
		t.Errorf("DELETE query = %v, want force and v", q)
	}
	if n := h.docker.Containers(); len(n) != 0 {
		t.Errorf("containers left: %q", n)
	}
	if _, ok := h.dropIn("alice"); ok {
		t.Error("the drop-in is still there")
	}
	if _, err := os.Stat(filepath.Join(h.stateDir, "a-1")); !os.IsNotExist(err) {
		t.Errorf("the keys directory is still there (%v)", err)
	}
}

func TestAppliedFindsWhatAFailedApplyLeftSoRemoveClearsIt(t *testing.T) {
	h := newFakeHost(t)
	h.docker.StartError = "boom"
	e := h.enforcer()
	ctx := context.Background()
	if err := e.Apply(ctx, assignment("a-1", "alice")); err == nil {
		t.Fatal("Apply succeeded")
	}
	got, err := h.enforcer().Applied(ctx)
	if err != nil || !slices.Equal(got, []string{"a-1"}) {
		t.Fatalf("Applied = %q, %v; want the half-applied a-1", got, err)
	}
	if err := e.Remove(ctx, "a-1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Applied(ctx); len(got) != 0 {
		t.Errorf("Applied after Remove = %q", got)
	}
}

func TestInvalidAssignmentsAreRefusedBeforeAnythingIsAsked(t *testing.T) {
	cases := map[string]enforce.Assignment{
		"id that walks up":      assignment("../etc", "alice"),
		"id with a slash":       assignment("a/1", "alice"),
		"user with a pattern":   assignment("a-1", "al*"),
		"MIG device":            assignment("a-1", "alice", enforce.GPU{UUID: "MIG-" + uuid0[4:]}),
		"GPU by index":          assignment("a-1", "alice", enforce.GPU{UUID: "0"}),
		"key with a newline":    {ID: "a-1", LinuxUsername: "alice", SSHKeys: []string{key1 + "\n" + key2}},
		"negative memory share": {ID: "a-1", LinuxUsername: "alice", RAMMB: -1},
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t)
			if err := h.enforcer().Apply(context.Background(), a); err == nil {
				t.Error("Apply succeeded")
			}
			if r := h.docker.Requests(); len(r) != 0 {
				t.Errorf("asked the engine %q", calls(r))
			}
			if _, err := os.Stat(h.stateDir); !os.IsNotExist(err) {
				t.Errorf("state directory created (%v)", err)
			}
		})
	}
}

func TestAccessPortIsThePublishedPortOfTheRunningContainer(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	ctx := context.Background()
	if got := e.AccessPort("a-1"); got != 0 {
		t.Errorf("AccessPort before Apply = %d, want 0", got)
	}
	a := assignment("a-1", "alice", enforce.GPU{Index: 0, UUID: uuid0})
	if err := e.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	_, c := h.created("gpulab-a-1")
	want := c.HostPort
	if want == 0 {
		t.Fatal("the fake engine published no sshd port")
	}
	if got := e.AccessPort("a-1"); got != want {
		t.Errorf("AccessPort = %d, want the engine's %d", got, want)
	}
	d, _ := h.dropIn("alice")
	if !strings.Contains(d, "\tPermitOpen 127.0.0.1:"+strconv.Itoa(want)+"\n") {
		t.Errorf("the reported port %d is not the one the drop-in permits:\n%s", want, d)
	}
	// A recreated container gets another port, and AccessPort follows it.
	a.RAMMB = 4096
	if err := e.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	_, c = h.created("gpulab-a-1")
	if got, now := e.AccessPort("a-1"), c.HostPort; got != now || got == want {
		t.Errorf("AccessPort after recreation = %d, want the new container's %d (old %d)", got, now, want)
	}
	if err := e.Remove(ctx, "a-1"); err != nil {
		t.Fatal(err)
	}
	if got := e.AccessPort("a-1"); got != 0 {
		t.Errorf("AccessPort after Remove = %d, want 0", got)
	}
}
