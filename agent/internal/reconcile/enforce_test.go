package reconcile

import (
	"context"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/enforce"
)

const (
	gpu0 = "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02"
	gpu1 = "GPU-11111111-2222-3333-4444-555555555555"
)

func withGPUs(a *agentv1.Assignment, uuids ...string) *agentv1.Assignment {
	for i, u := range uuids {
		a.Gpus = append(a.Gpus, &agentv1.AssignedGpu{Index: int32(i), Uuid: u})
	}
	return a
}

func withMode(a *agentv1.Assignment, m agentv1.EnforcementMode) *agentv1.Assignment {
	a.EnforcementMode = m
	return a
}

func TestASoftAssignmentShowsItsUserOnlyItsGPUsAndLeavesWithIt(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	desired := []*agentv1.Assignment{withGPUs(assign("a-1", "alice", keyA1), gpu0, gpu1), assign("c-1", "carol", keyC1)}

	st := r.Apply(context.Background(), desired)

	if got, want := outcome(st), []string{"a-1=APPLIED", "c-1=APPLIED"}; !slices.Equal(got, want) {
		t.Fatalf("outcome = %q, want %q", got, want)
	}
	if got := h.dropIn("alice"); !strings.Contains(got, "Match User alice\n\tSetEnv CUDA_VISIBLE_DEVICES="+gpu0+","+gpu1+"\nMatch all\n") {
		t.Errorf("alice's drop-in:\n%s", got)
	}
	if got := h.dropIn("carol"); !strings.Contains(got, "\tSetEnv CUDA_VISIBLE_DEVICES=\n") {
		t.Errorf("carol holds no GPU but her drop-in does not hide them:\n%s", got)
	}
	calls := h.calls()
	if i, j := slices.IndexFunc(calls, func(c []string) bool { return c[0] == "useradd" && slices.Contains(c, "alice") }),
		slices.IndexFunc(calls, func(c []string) bool { return c[0] == "sshd" }); i < 0 || j < i {
		t.Errorf("commands = %q, want alice's account before the sshd check", calls)
	}
	r.Apply(context.Background(), desired)
	if got := h.calls(); len(got) != 0 {
		t.Errorf("second Apply ran %q, want nothing", got)
	}

	st = r.Apply(context.Background(), desired[1:])
	if got, want := outcome(st), []string{"a-1=REMOVED", "c-1=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome after revoking = %q, want %q", got, want)
	}
	if got := h.dropIn("alice"); got != "" {
		t.Errorf("alice's drop-in is still there:\n%s", got)
	}
	calls = h.calls()
	if i, j := slices.IndexFunc(calls, func(c []string) bool { return c[0] == "usermod" }),
		slices.IndexFunc(calls, func(c []string) bool { return c[0] == "sshd" }); i < 0 || j < i {
		t.Errorf("commands = %q, want the lock before the drop-in's removal", calls)
	}
}

func TestAModeThisAgentDoesNotKnowIsRefusedBeforeTouchingTheHost(t *testing.T) {
	for mode, want := range map[agentv1.EnforcementMode]string{
		agentv1.EnforcementMode(99):                          "a-1=FAILED: Enforcement mode 99 is unknown to this agent.",
		agentv1.EnforcementMode_ENFORCEMENT_MODE_UNSPECIFIED: "a-1=FAILED: Enforcement mode is unspecified; the agent does not guess one.",
	} {
		t.Run(mode.String(), func(t *testing.T) {
			h := newFakeHost(t)
			st := h.reconciler().Apply(context.Background(), []*agentv1.Assignment{withMode(withGPUs(assign("a-1", "alice", keyA1), gpu0), mode)})
			if got := outcome(st); !slices.Equal(got, []string{want}) {
				t.Errorf("outcome = %q, want %q", got, want)
			}
			if c := h.calls(); len(c) != 0 {
				t.Errorf("ran %q, want nothing", c)
			}
			if h.account("alice") != nil {
				t.Error("an account was created for a mode that cannot be enforced")
			}
		})
	}
}

func TestAnAssignmentWhoseEnforcementFailsGrantsNoAccess(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	mustWrite(t, h.path("sshd-status"), "255\n", 0o644)

	st := r.Apply(context.Background(), []*agentv1.Assignment{withGPUs(assign("a-1", "alice", keyA1), gpu0)})

	got := st.GetAssignments()
	if len(got) != 1 || got[0].GetState() != agentv1.ApplyState_APPLY_STATE_FAILED ||
		!strings.HasPrefix(got[0].GetError(), "Soft enforcement was not applied, so this assignment grants no access: ") ||
		!strings.Contains(got[0].GetError(), "Bad configuration option") {
		t.Fatalf("report = %v, want FAILED with sshd's reason", got)
	}
	checkKeys(t, h, h.account("alice"), keysHeader)
	if d := h.dropIn("alice"); d != "" {
		t.Errorf("a drop-in sshd refused was left:\n%s", d)
	}

	// Once sshd accepts it, the next heartbeat grants the access.
	if err := os.Remove(h.path("sshd-status")); err != nil {
		t.Fatal(err)
	}
	st = r.Apply(context.Background(), []*agentv1.Assignment{withGPUs(assign("a-1", "alice", keyA1), gpu0)})
	if got, want := outcome(st), []string{"a-1=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	checkKeys(t, h, h.account("alice"), keysContent(keyA1))
}

func TestAnAssignmentSwitchedToAModeTheHostCannotEnforceLosesItsAccessAndItsDropIn(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	a := withGPUs(assign("a-1", "alice", keyA1), gpu0)
	r.Apply(context.Background(), []*agentv1.Assignment{a})

	// The fake host has no cgroup v2 hierarchy, so cgroup enforcement refuses.
	st := r.Apply(context.Background(), []*agentv1.Assignment{withMode(a, agentv1.EnforcementMode_ENFORCEMENT_MODE_CGROUP)})

	got := outcome(st)
	if len(got) != 1 || !strings.HasPrefix(got[0], "a-1=FAILED: Cgroup enforcement was not applied, so this assignment grants no access: ") ||
		!strings.Contains(got[0], "needs the unified cgroup v2 hierarchy") {
		t.Errorf("outcome = %q, want FAILED with the host's lack", got)
	}
	checkKeys(t, h, h.account("alice"), keysHeader)
	if d := h.dropIn("alice"); d != "" {
		t.Errorf("alice's soft drop-in was left:\n%s", d)
	}
}

func TestARestartedAgentRemovesTheDropInOfAnAssignmentNoLongerDesired(t *testing.T) {
	h := newFakeHost(t)
	h.reconciler().Apply(context.Background(), []*agentv1.Assignment{
		withGPUs(assign("a-1", "alice", keyA1), gpu0), withGPUs(assign("a-2", "alice", keyA2), gpu1),
	})

	// A new process knows nothing of a-1; the drop-in on the host does.
	st := h.reconciler().Apply(context.Background(), []*agentv1.Assignment{withGPUs(assign("a-2", "alice", keyA2), gpu1)})

	if got, want := outcome(st), []string{"a-2=APPLIED"}; !slices.Equal(got, want) {
		t.Errorf("outcome = %q, want %q", got, want)
	}
	d := h.dropIn("alice")
	if strings.Contains(d, "a-1") || !strings.Contains(d, "CUDA_VISIBLE_DEVICES="+gpu1+"\n") {
		t.Errorf("alice's drop-in still shows a-1's GPU:\n%s", d)
	}
}

func TestOneAccountsAssignmentsOnANodeMustShareAMode(t *testing.T) {
	h := newFakeHost(t)
	st := h.reconciler().Apply(context.Background(), []*agentv1.Assignment{
		withGPUs(assign("a-1", "alice", keyA1), gpu0),
		withMode(withGPUs(assign("a-2", "alice", keyA2), gpu1), agentv1.EnforcementMode_ENFORCEMENT_MODE_CONTAINER),
	})
	got := outcome(st)
	if len(got) != 2 || got[0] != "a-1=APPLIED" ||
		!strings.Contains(got[1], "a-2=FAILED: Container enforcement was not applied, so this assignment grants no access: alice already holds assignment a-1 in soft mode") {
		t.Errorf("outcome = %q", got)
	}
	checkKeys(t, h, h.account("alice"), keysContent(keyA1))
}

// portEnforcer is a container-like Enforcer whose applied assignments accept
// SSH on port.
type portEnforcer struct {
	port    int
	applied map[string]bool
}

func (p *portEnforcer) Apply(_ context.Context, a enforce.Assignment) error {
	p.applied[a.ID] = true
	return nil
}

func (p *portEnforcer) Remove(_ context.Context, id string) error {
	delete(p.applied, id)
	return nil
}

func (p *portEnforcer) Applied(context.Context) ([]string, error) {
	return slices.Sorted(maps.Keys(p.applied)), nil
}

func (p *portEnforcer) AccessPort(id string) int {
	if p.applied[id] {
		return p.port
	}
	return 0
}

// plainEnforcer is an Enforcer with no access port of its own (soft-like).
type plainEnforcer struct{ inner *portEnforcer }

func (p plainEnforcer) Apply(ctx context.Context, a enforce.Assignment) error {
	return p.inner.Apply(ctx, a)
}
func (p plainEnforcer) Remove(ctx context.Context, id string) error   { return p.inner.Remove(ctx, id) }
func (p plainEnforcer) Applied(ctx context.Context) ([]string, error) { return p.inner.Applied(ctx) }

func TestAContainerAssignmentReportsItsAccessPortAndOthersNone(t *testing.T) {
	for _, tc := range []struct {
		port int
		want uint32
	}{{32768, 32768}, {65535, 65535}, {65536, 0}, {0, 0}, {-1, 0}} {
		t.Run(strconv.Itoa(tc.port), func(t *testing.T) {
			h := newFakeHost(t)
			reg := enforce.NewRegistry()
			if err := reg.Register("container", &portEnforcer{port: tc.port, applied: map[string]bool{}}); err != nil {
				t.Fatal(err)
			}
			if err := reg.Register("soft", plainEnforcer{&portEnforcer{port: 2222, applied: map[string]bool{}}}); err != nil {
				t.Fatal(err)
			}
			h.cfg.Enforcers = reg
			st := h.reconciler().Apply(context.Background(), []*agentv1.Assignment{
				withMode(assign("a-1", "alice", keyA1), agentv1.EnforcementMode_ENFORCEMENT_MODE_CONTAINER),
				assign("c-1", "carol", keyC1),
			})
			if got, want := outcome(st), []string{"a-1=APPLIED", "c-1=APPLIED"}; !slices.Equal(got, want) {
				t.Fatalf("outcome = %q, want %q", got, want)
			}
			if got := st.GetAssignments()[0].GetAccessPort(); got != tc.want {
				t.Errorf("container assignment's access_port = %d, want %d", got, tc.want)
			}
			if got := st.GetAssignments()[1].GetAccessPort(); got != 0 {
				t.Errorf("soft assignment's access_port = %d, want 0", got)
			}
		})
	}
}
