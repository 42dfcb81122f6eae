package cgroup

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/enforcetest"
	"github.com/gpulab/gpulab/agent/internal/gpu/gputest"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/sshd/sshdtest"
)

const (
	uuid0 = "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02"
	uuid1 = "GPU-5e6f7a8b-0000-4a1f-a220-6a316a1c0f01"
	uuid3 = "GPU-1a2b3c4d-0000-4a1f-a220-6a316a1c0f03"
)

// fakeHost is a node with systemd, cgroup v2 and four GPU device nodes under
// a temporary root; its Runner answers systemctl and sshd -T as they would.
type fakeHost struct {
	*sshdtest.Host
	root string
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	root := t.TempDir()
	h := &fakeHost{root: root, Host: &sshdtest.Host{Dir: filepath.Join(root, "etc/ssh/sshd_config.d"), Extra: daemonReload}}
	for _, d := range []string{"run/systemd/system", "sys/fs/cgroup", "dev", "etc/ssh/sshd_config.d", "etc/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(h.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.write(t, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
	h.write(t, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\ngpulab-alice:x:1001:1001::/home/gpulab-alice:/bin/bash\nbob:x:1002:1002::/home/bob:/bin/bash\n")
	for _, n := range []string{"nvidia0", "nvidia1", "nvidia2", "nvidia3", "nvidiactl"} {
		h.write(t, "dev/"+n, "")
	}
	// Here each GPU's device minor is its index; the attack test makes them differ.
	gputest.WriteDriverInfo(t, root, "0000:01:00.0", uuid0, "0")
	gputest.WriteDriverInfo(t, root, "0000:41:00.0", uuid1, "1")
	gputest.WriteDriverInfo(t, root, "0000:81:00.0", uuid3, "3")
	return h
}

func (h *fakeHost) write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(h.root, p), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *fakeHost) read(p string) string {
	data, _ := os.ReadFile(filepath.Join(h.root, p))
	return string(data)
}

func (h *fakeHost) enforcer() *Enforcer { return New(hostexec.Host{Root: h.root, Runner: h}, nil) }

// daemonReload answers systemctl daemon-reload, which cgroup adds to what
// package sshd runs.
func daemonReload(name string, args []string) ([]byte, []byte, error, bool) {
	return nil, nil, nil, name == "systemctl" && slices.Equal(args, []string{"daemon-reload"})
}

func assignment(id, user string, cpus int, ramMB int64, gpus ...enforce.GPU) enforce.Assignment {
	return enforce.Assignment{ID: id, LinuxUsername: user, CPUs: cpus, RAMMB: ramMB, GPUs: gpus}
}

const aliceSlice = "etc/systemd/system/user-1001.slice.d/" + dropInName

func TestConformance(t *testing.T) {
	enforcetest.Conformance(t, func(t *testing.T) enforce.Enforcer { return newFakeHost(t).enforcer() })
}

func TestApplyLimitsTheUsersSliceThenSetsTheirGPUs(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	if err := e.Apply(context.Background(), assignment("a-1", "gpulab-alice", 8, 65536, enforce.GPU{Index: 3, UUID: uuid3})); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	want := header +
		"# gpulab-assignment a-1 user=gpulab-alice cpus=8 ram_mb=65536 gpus=nvidia3=" + uuid3 + "\n" +
		"[Slice]\nCPUQuota=800%\nMemoryMax=65536M\nMemorySwapMax=0\nDevicePolicy=closed\n" +
		"DeviceAllow=char-pts rw\nDeviceAllow=/dev/tty rw\nDeviceAllow=/dev/ptmx rw\n" +
		"DeviceAllow=/dev/nvidiactl rw\nDeviceAllow=/dev/nvidia-uvm rw\nDeviceAllow=/dev/nvidia-uvm-tools rw\n" +
		"DeviceAllow=/dev/nvidia3 rw\n"
	if got := h.read(aliceSlice); got != want {
		t.Errorf("slice drop-in =\n%s\nwant\n%s", got, want)
	}
	if got := h.read("etc/ssh/sshd_config.d/10-gpulab-cgroup-gpulab-alice.conf"); !strings.Contains(got, "SetEnv CUDA_VISIBLE_DEVICES="+uuid3+"\n") {
		t.Errorf("sshd drop-in =\n%s\nwant CUDA_VISIBLE_DEVICES=%s", got, uuid3)
	}
	calls := h.Take()
	reload := slices.IndexFunc(calls, func(c []string) bool { return slices.Equal(c, []string{"systemctl", "daemon-reload"}) })
	sshd := slices.IndexFunc(calls, func(c []string) bool { return c[0] == "sshd" })
	if reload < 0 || sshd < reload {
		t.Errorf("commands = %q, want daemon-reload before sshd sees the GPUs", calls)
	}

	// The same assignment again: nothing to write, nothing to run.
	if err := e.Apply(context.Background(), assignment("a-1", "gpulab-alice", 8, 65536, enforce.GPU{Index: 3, UUID: uuid3})); err != nil {
		t.Fatalf("Apply again: %v", err)
	}
	if c := h.Take(); len(c) != 0 {
		t.Errorf("a repeated Apply ran %q, want nothing", c)
	}
}

func TestTheUsersAssignmentsAreSummedAndTheirRemovalLeavesTheAdminsDropIns(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	ctx := context.Background()
	admin := "etc/systemd/system/user-1001.slice.d/10-admin.conf"
	if err := os.MkdirAll(filepath.Dir(filepath.Join(h.root, admin)), 0o755); err != nil {
		t.Fatal(err)
	}
	h.write(t, admin, "[Slice]\nTasksMax=500\n")
	if err := e.Apply(ctx, assignment("a-1", "gpulab-alice", 2, 1024, enforce.GPU{Index: 0, UUID: uuid0})); err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, assignment("a-2", "gpulab-alice", 4, 2048, enforce.GPU{Index: 3, UUID: uuid3})); err != nil {
		t.Fatal(err)
	}
	got := h.read(aliceSlice)
	for _, w := range []string{"CPUQuota=600%\n", "MemoryMax=3072M\n", "DeviceAllow=/dev/nvidia0 rw\n", "DeviceAllow=/dev/nvidia3 rw\n"} {
		if !strings.Contains(got, w) {
			t.Errorf("slice drop-in lacks %q:\n%s", w, got)
		}
	}
	// An assignment without a memory limit lifts the user's.
	if err := e.Apply(ctx, assignment("a-2", "gpulab-alice", 4, 0, enforce.GPU{Index: 3, UUID: uuid3})); err != nil {
		t.Fatal(err)
	}
	if got := h.read(aliceSlice); strings.Contains(got, "MemoryMax") || !strings.Contains(got, "CPUQuota=600%") {
		t.Errorf("with a-2 unlimited in memory the drop-in is\n%s", got)
	}

	if err := e.Remove(ctx, "a-2"); err != nil {
		t.Fatal(err)
	}
	if got := h.read(aliceSlice); strings.Contains(got, "nvidia3") || !strings.Contains(got, "CPUQuota=200%\nMemoryMax=1024M\n") {
		t.Errorf("after removing a-2 the drop-in is\n%s", got)
	}
	if err := e.Remove(ctx, "a-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.root, aliceSlice)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the drop-in outlived its last assignment: %v", err)
	}
	if h.read(admin) != "[Slice]\nTasksMax=500\n" {
		t.Error("the admin's drop-in was touched")
	}
	if ids, err := e.Applied(ctx); err != nil || len(ids) != 0 {
		t.Errorf("Applied = %q, %v, want none", ids, err)
	}
}

func TestAnAssignmentMovedToAnotherUserLeavesTheOldSlice(t *testing.T) {
	h := newFakeHost(t)
	e := h.enforcer()
	ctx := context.Background()
	if err := e.Apply(ctx, assignment("a-1", "gpulab-alice", 2, 1024, enforce.GPU{Index: 0, UUID: uuid0})); err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, assignment("a-1", "bob", 2, 1024, enforce.GPU{Index: 0, UUID: uuid0})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.root, aliceSlice)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("alice keeps a slice limit for a-1: %v", err)
	}
	if got := h.read("etc/systemd/system/user-1002.slice.d/" + dropInName); !strings.Contains(got, "user=bob") {
		t.Errorf("bob's drop-in =\n%s", got)
	}
}

func TestAHostThatCannotEnforceIsRefusedWithWhatItLacks(t *testing.T) {
	for name, tc := range map[string]struct {
		break_ func(h *fakeHost, t *testing.T)
		a      enforce.Assignment
		want   string
	}{
		"no systemd": {func(h *fakeHost, t *testing.T) { os.RemoveAll(filepath.Join(h.root, "run/systemd")) },
			assignment("a-1", "gpulab-alice", 1, 1, enforce.GPU{Index: 0, UUID: uuid0}), "needs systemd as the init system"},
		"cgroup v1": {func(h *fakeHost, t *testing.T) { os.Remove(filepath.Join(h.root, "sys/fs/cgroup/cgroup.controllers")) },
			assignment("a-1", "gpulab-alice", 1, 1), "unified cgroup v2 hierarchy"},
		"no memory controller": {func(h *fakeHost, t *testing.T) { h.write(t, "sys/fs/cgroup/cgroup.controllers", "cpu io pids\n") },
			assignment("a-1", "gpulab-alice", 1, 1), "needs the memory controller"},
		"no device node": {func(h *fakeHost, t *testing.T) { gputest.WriteDriverInfo(t, h.root, "0000:01:00.0", uuid0, "7") },
			assignment("a-1", "gpulab-alice", 1, 1, enforce.GPU{Index: 0, UUID: uuid0}), "/dev/nvidia7 does not exist"},
		"a GPU the driver does not know": {func(h *fakeHost, t *testing.T) {
			os.RemoveAll(filepath.Join(h.root, "proc/driver/nvidia/gpus/0000:01:00.0"))
		},
			assignment("a-1", "gpulab-alice", 1, 1, enforce.GPU{Index: 0, UUID: uuid0}), "is not on this host"},
		"no NVIDIA driver": {func(h *fakeHost, t *testing.T) { os.RemoveAll(filepath.Join(h.root, "proc/driver/nvidia")) },
			assignment("a-1", "gpulab-alice", 1, 1, enforce.GPU{Index: 0, UUID: uuid0}), "is the NVIDIA driver loaded?"},
		"no such user": {func(*fakeHost, *testing.T) {},
			assignment("a-1", "carol", 1, 1), "user carol does not exist"},
		"newline in an id": {func(*fakeHost, *testing.T) {},
			assignment("a-1\nDevicePolicy=auto", "gpulab-alice", 1, 1), "assignment id"},
		"negative memory": {func(*fakeHost, *testing.T) {},
			assignment("a-1", "gpulab-alice", 1, -5), "not a valid memory limit"},
		"a MIG device": {func(*fakeHost, *testing.T) {},
			assignment("a-1", "gpulab-alice", 1, 1, enforce.GPU{Index: 0, UUID: "MIG-ee71c7e5-5947-4a1f-a220-6a316a1c0f02"}), "not GPU-<uuid>"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newFakeHost(t)
			tc.break_(h, t)
			err := h.enforcer().Apply(context.Background(), tc.a)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want an error containing %q", err, tc.want)
			}
			if c := h.Take(); len(c) != 0 {
				t.Errorf("ran %q, want nothing", c)
			}
			for _, dir := range []string{"etc/systemd/system", "etc/ssh/sshd_config.d"} {
				if ents, _ := os.ReadDir(filepath.Join(h.root, dir)); len(ents) != 0 {
					t.Errorf("%s holds %d entries, want none", dir, len(ents))
				}
			}
		})
	}
}

// systemd's own parser reads the drop-in: every directive is one this
// systemd knows, with a value it accepts. Skipped where systemd-analyze is
// not installed (it needs no running systemd).
func TestSystemdAcceptsTheDropIn(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	d := &sliceDropIn{uid: 1001}
	d.set(entry{id: "a-1", user: "gpulab-alice", cpus: 8, ramMB: 4096, devs: []device{{"/dev/nvidia10", uuid3}, {"/dev/nvidia0", uuid0}}})
	unit := filepath.Join(t.TempDir(), "gpulab-check.slice")
	if err := os.WriteFile(unit, d.render(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s\ndrop-in:\n%s", err, out, d.render())
	}
	if !strings.Contains(string(d.render()), "DeviceAllow=/dev/nvidia0 rw\nDeviceAllow=/dev/nvidia10 rw\n") {
		t.Errorf("devices out of order:\n%s", d.render())
	}
}

// The attack: nvidia-smi's index and the driver's device minor differ (the
// driver numbers /dev/nvidiaN in its own probe order, nvidia-smi by PCI bus
// id), so a rule built from the index would open another tenant's GPU and
// shut the user out of their own.
func TestACgroupRuleNamesTheRightMinorWhenIndexIsNotMinor(t *testing.T) {
	h := newFakeHost(t)
	// nvidia-smi's index 3 is the board the driver calls /dev/nvidia1, and
	// index 1 is /dev/nvidia3.
	gputest.WriteDriverInfo(t, h.root, "0000:41:00.0", uuid1, "3")
	gputest.WriteDriverInfo(t, h.root, "0000:81:00.0", uuid3, "1")
	if err := h.enforcer().Apply(context.Background(), assignment("a-1", "gpulab-alice", 8, 65536, enforce.GPU{Index: 3, UUID: uuid3})); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got := h.read(aliceSlice)
	if !strings.Contains(got, "DeviceAllow=/dev/nvidia1 rw\n") || strings.Contains(got, "/dev/nvidia3") {
		t.Errorf("slice drop-in =\n%s\nwant /dev/nvidia1 (the minor of %s) allowed and /dev/nvidia3 (another GPU) not", got, uuid3)
	}
}
