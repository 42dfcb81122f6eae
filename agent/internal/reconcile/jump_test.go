package reconcile

import (
	"context"
	"slices"
	"strings"
	"testing"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
)

func jumpEntry(id, user string, permitOpen []string, keys ...string) *agentv1.Assignment {
	a := assign(id, user, keys...)
	a.EnforcementMode = agentv1.EnforcementMode_ENFORCEMENT_MODE_JUMP
	a.ForwardTargets = permitOpen
	return a
}

func TestAJumpAccountHasNoShellAndKeysThatOnlyForwardToTheUsersNodes(t *testing.T) {
	h := newFakeHost(t)
	r := h.reconciler()
	st := r.Apply(context.Background(), []*agentv1.Assignment{
		jumpEntry("u-1", "alice", []string{"10.0.0.5:22", "[fd00:0::7]:2222"}, keyA1, keyA2),
	})
	if got, want := outcome(st), []string{"u-1=APPLIED"}; !slices.Equal(got, want) {
		t.Fatalf("outcome = %q, want %q (errors %q)", got, want, st.GetErrors())
	}
	wantCalls := [][]string{
		{"useradd", "--create-home", "--shell", "/usr/sbin/nologin", "--comment", "gpulab-managed (created for assignment u-1)", "--user-group", "alice"},
	}
	if got := accountCalls(h.calls()); !slices.EqualFunc(got, wantCalls, slices.Equal) {
		t.Errorf("commands = %q, want %q", got, wantCalls)
	}
	opts := `restrict,port-forwarding,permitopen="10.0.0.5:22",permitopen="[fd00::7]:2222" `
	checkKeys(t, h, h.account("alice"), keysContent(opts+keyA1, opts+keyA2))

	// The user's last assignment ended: the entry leaves the list and the account goes.
	st = r.Apply(context.Background(), nil)
	if got, want := outcome(st), []string{"u-1=REMOVED"}; !slices.Equal(got, want) {
		t.Fatalf("outcome = %q, want %q", got, want)
	}
	checkKeys(t, h, h.account("alice"), "")
}

func TestAJumpEntryWithoutAUsableDestinationGrantsNothing(t *testing.T) {
	for _, dests := range [][]string{
		nil,
		{"bastion.example.org:22"},
		{"10.0.0.5"},
		{"10.0.0.5:0"},
		{"10.0.0.5:65536"},
		{"10.0.0.5:022"},
		{`10.0.0.5:22",command="sh`},
		{"[fe80::1%eth0]:22"},
	} {
		h := newFakeHost(t)
		st := h.reconciler().Apply(context.Background(), []*agentv1.Assignment{jumpEntry("u-1", "alice", dests, keyA1)})
		if got := outcome(st); len(got) != 1 || !strings.HasPrefix(got[0], "u-1=FAILED") {
			t.Errorf("%q: outcome = %q, want FAILED", dests, got)
		}
		if h.account("alice") != nil {
			t.Errorf("%q: alice was created", dests)
		}
	}
}
