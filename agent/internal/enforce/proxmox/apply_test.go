package proxmox

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/proxmox/pvetest"
	"github.com/gpulab/gpulab/agent/internal/gpu/gputest"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

func TestChangedGPUsAreUpdatedInPlaceAndTheCTRestarted(t *testing.T) {
	s, e := newHost(t)
	mustApply(t, e, gpuAssignment(idA, "alice", 8, 65536, 0))
	s.Requests()
	mustApply(t, e, gpuAssignment(idA, "alice", 4, 8192, 1, 3))

	rs := s.Requests()
	want := []string{"PUT /nodes/pve1/lxc/100/config", "CLI pct set 100", "POST /nodes/pve1/lxc/100/status/stop", "POST /nodes/pve1/lxc/100/status/start"}
	if got := calls(pvetest.Mutations(rs)); !slices.Equal(got, want) {
		t.Fatalf("mutations = %q, want %q", got, want)
	}
	f := formOf(t, rs, "PUT", "/nodes/pve1/lxc/100/config")
	if f.Get("cores") != "4" || f.Get("memory") != "8192" || len(f) != 2 {
		t.Errorf("update = %v, want cores 4 and memory 8192", f)
	}
	f = formOf(t, rs, "CLI", "pct set 100")
	for k, v := range map[string]string{"dev0": "/dev/nvidia1", "dev1": "/dev/nvidia3", "dev2": "/dev/nvidiactl", "dev3": "/dev/nvidia-uvm", "dev4": "/dev/nvidia-uvm-tools"} {
		if got := f.Get(k); got != v {
			t.Errorf("pct set %s = %q, want %q", k, got, v)
		}
	}
	ct, _ := s.CT(100)
	if ct.Config["dev0"] != "/dev/nvidia1" || len(ct.Pending) != 0 || ct.Status != "running" {
		t.Errorf("CT dev0 = %q, pending %v, status %s; want /dev/nvidia1 in effect and running", ct.Config["dev0"], ct.Pending, ct.Status)
	}

	// No GPU, no CPU limit: every device and the cores option go.
	mustApply(t, e, gpuAssignment(idA, "alice", 0, 8192))
	rs = s.Requests()
	if got := formOf(t, rs, "PUT", "/nodes/pve1/lxc/100/config").Get("delete"); got != "cores" {
		t.Errorf("update delete = %q, want cores", got)
	}
	if got, want := formOf(t, rs, "CLI", "pct set 100").Get("delete"), "dev0,dev1,dev2,dev3,dev4"; got != want {
		t.Errorf("pct set --delete %q, want %q", got, want)
	}
	if ct, _ := s.CT(100); slices.ContainsFunc(slices.Collect(maps.Keys(ct.Config)), func(k string) bool { return strings.HasPrefix(k, "dev") }) {
		t.Errorf("CT still has devices: %v", ct.Config)
	}
}

func TestCoresAndMemoryChangeWithoutRestart(t *testing.T) {
	s, e := newHost(t)
	mustApply(t, e, gpuAssignment(idA, "alice", 8, 65536, 0))
	s.Requests()
	mustApply(t, e, gpuAssignment(idA, "alice", 2, 4096, 0))
	if got, want := calls(pvetest.Mutations(s.Requests())), []string{"PUT /nodes/pve1/lxc/100/config"}; !slices.Equal(got, want) {
		t.Errorf("mutations = %q, want %q", got, want)
	}
}

func TestMemoryWithoutAGrant(t *testing.T) {
	s, e := newHost(t)
	mustApply(t, e, gpuAssignment(idA, "alice", 0, 0))
	if got := formOf(t, s.Requests(), "POST", "/nodes/pve1/lxc").Get("memory"); got != "262144" {
		t.Errorf("memory = %q, want the node's 262144 MiB", got)
	}
	s2, e2 := newHost(t, func(_ *hostexec.Host, c *Config) { c.DefaultMemoryMB = 4096 })
	mustApply(t, e2, gpuAssignment(idA, "alice", 0, 0))
	if got := formOf(t, s2.Requests(), "POST", "/nodes/pve1/lxc").Get("memory"); got != "4096" {
		t.Errorf("memory = %q, want default_memory_mb 4096", got)
	}
}

func TestAnInterruptedCreateIsWaitedForNotRepeated(t *testing.T) {
	s, e := newHost(t)
	s.SetTaskPolls(2)
	ctx, cancel := context.WithCancel(context.Background())
	s.OnRequest(func(r pvetest.Request) {
		if strings.HasPrefix(r.Path, "/nodes/pve1/tasks/") {
			cancel() // the agent stops waiting after the first poll
		}
	})
	a := gpuAssignment(idA, "alice", 1, 1024, 0)
	if err := e.Apply(ctx, a); err == nil {
		t.Fatal("Apply with a cancelled context succeeded")
	}
	s.OnRequest(nil)
	err := e.Apply(context.Background(), a)
	if err == nil || !strings.Contains(err.Error(), "still being created") {
		t.Errorf("Apply during the create = %v, want it to wait for the task", err)
	}
	mustApply(t, e, a)
	creates := 0
	for _, c := range calls(s.Requests()) {
		if c == "POST /nodes/pve1/lxc" {
			creates++
		}
	}
	if ids := s.CTIDs(); creates != 1 || !slices.Equal(ids, []int{100}) {
		t.Errorf("%d creates, CTs %v; want one CT made once", creates, ids)
	}
	if ct, _ := s.CT(100); ct.Status != "running" {
		t.Errorf("CT status = %q, want running", ct.Status)
	}
}

// An agent that died between changing the devices of a running CT and
// restarting it leaves the change pending; PVE's config shows pending
// values by default, so only reading current=1 notices the restart is due.
func TestAPendingDeviceChangeIsFinishedByTheNextApply(t *testing.T) {
	s, e := newHost(t)
	mustApply(t, e, gpuAssignment(idA, "alice", 8, 65536, 0))
	if _, stderr, err := s.Pct().Run(context.Background(), "pct", "set", "100", "--dev0", "/dev/nvidia1"); err != nil {
		t.Fatalf("pct set: %v: %s", err, stderr)
	}
	s.Requests()
	mustApply(t, e, gpuAssignment(idA, "alice", 8, 65536, 1))
	want := []string{"CLI pct set 100", "POST /nodes/pve1/lxc/100/status/stop", "POST /nodes/pve1/lxc/100/status/start"}
	if got := calls(pvetest.Mutations(s.Requests())); !slices.Equal(got, want) {
		t.Errorf("mutations = %q, want %q", got, want)
	}
	if ct, _ := s.CT(100); ct.Config["dev0"] != "/dev/nvidia1" || len(ct.Pending) != 0 {
		t.Errorf("CT dev0 = %q pending %v, want /dev/nvidia1 in effect", ct.Config["dev0"], ct.Pending)
	}
}

func TestDeviceFromProcMapsByUUID(t *testing.T) {
	root := t.TempDir()
	gputest.WriteDriverInfo(t, root, "0000:01:00.0", "GPU-aaaaaaaa-0000-0000-0000-000000000000", "1")
	gputest.WriteDriverInfo(t, root, "0000:41:00.0", "GPU-bbbbbbbb-0000-0000-0000-000000000000", "0")
	s, e := newHost(t, func(_ *hostexec.Host, c *Config) { c.DeviceFor = DeviceFromProc(root) })
	// nvidia-smi's index 0 is the board at minor 1.
	mustApply(t, e, enforce.Assignment{ID: idA, LinuxUsername: "alice", RAMMB: 1024,
		GPUs: []enforce.GPU{{Index: 0, UUID: "GPU-aaaaaaaa-0000-0000-0000-000000000000"}}})
	if got := formOf(t, s.Requests(), "CLI", "pct set 100").Get("dev0"); got != "/dev/nvidia1" {
		t.Errorf("dev0 = %q, want /dev/nvidia1 (the UUID's minor)", got)
	}
	err := e.Apply(context.Background(), enforce.Assignment{ID: idB, LinuxUsername: "alice", RAMMB: 1024,
		GPUs: []enforce.GPU{{Index: 2, UUID: "GPU-cccccccc-0000-0000-0000-000000000000"}}})
	if err == nil || !strings.Contains(err.Error(), "not on this host") {
		t.Errorf("Apply with an unknown GPU = %v", err)
	}
}

func TestWithoutPctTheGPUsCannotBeSet(t *testing.T) {
	s, e := newHost(t, func(h *hostexec.Host, _ *Config) {
		h.Runner = runnerFunc(func(context.Context, string, ...string) ([]byte, []byte, error) {
			return nil, nil, fmt.Errorf("run pct: %w", hostexec.ErrNotFound)
		})
	})
	err := e.Apply(context.Background(), gpuAssignment(idA, "alice", 1, 1024, 0))
	if err == nil || !strings.Contains(err.Error(), "pct not found; the proxmox mode runs on the PVE node") {
		t.Fatalf("Apply = %v, want it to say pct is missing", err)
	}
	if ct, _ := s.CT(100); ct.Status != "stopped" {
		t.Errorf("CT status = %q; a CT without its GPUs must not start", ct.Status)
	}
}

func TestStartFailureNamesTheMissingDevice(t *testing.T) {
	_, e := newHost(t)
	err := e.Apply(context.Background(), gpuAssignment(idA, "alice", 1, 1024, 9))
	if err == nil || !strings.Contains(err.Error(), "Device /dev/nvidia9 does not exist") {
		t.Errorf("Apply = %v, want the start task's error", err)
	}
}
