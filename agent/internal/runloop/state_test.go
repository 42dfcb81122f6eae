package runloop

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
)

func TestStateRoundTripsAndBelongsToItsNode(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	resp := &agentv1.HeartbeatResponse{HeartbeatIntervalS: 30, Assignments: []*agentv1.Assignment{
		assignment("a1", now.Add(time.Hour)), assignment("a2", time.Time{}),
	}}
	data, err := encodeState("node-1", resp, now)
	if err != nil {
		t.Fatal(err)
	}
	// What a crash in the middle of an earlier write left behind.
	leftover := filepath.Join(dir, stateTmpPrefix+"123")
	if err := os.WriteFile(leftover, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeState(dir, data); err != nil {
		t.Fatal(err)
	}
	got, savedAt, err := loadState(dir, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, resp) || !savedAt.Equal(now.UTC()) {
		t.Errorf("loadState = %v at %v, want %v at %v", got, savedAt, resp, now)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("the half-written temporary file is still there")
	}
	if got, _, err := loadState(dir, "node-2"); got != nil || err != nil {
		t.Errorf("another node's state was loaded: %v, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadState(dir, "node-1"); err == nil {
		t.Error("a damaged state file loaded without an error")
	}
	if got, _, err := loadState(t.TempDir(), "node-1"); got != nil || err != nil {
		t.Errorf("no state file: %v, %v", got, err)
	}
}

func TestInForceDropsAssignmentsThatHaveEnded(t *testing.T) {
	now := time.Now()
	bad := assignment("bad", time.Time{})
	bad.ExpiresAt = &timestamppb.Timestamp{Seconds: -1 << 62} // not a valid time
	desired := []*agentv1.Assignment{
		assignment("none", time.Time{}),
		assignment("ended", now.Add(-time.Second)),
		assignment("now", now),
		assignment("later", now.Add(time.Minute)),
		bad,
	}
	var ids []string
	for _, a := range inForce(desired, now) {
		ids = append(ids, a.GetAssignmentId())
	}
	if !slices.Equal(ids, []string{"none", "later"}) {
		t.Errorf("inForce = %v, want [none later]", ids)
	}
	if got := nextExpiry(desired, now); !got.Equal(now.Add(time.Minute)) {
		t.Errorf("nextExpiry = %v, want %v", got, now.Add(time.Minute))
	}
}
