package runloop

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	agentv1 "github.com/gpulab/gpulab/agent/gen/gpulab/agent/v1"
	"github.com/gpulab/gpulab/agent/internal/atomicfile"
)

// StateFile is the last desired state, in the identity directory. It holds
// user names and SSH public keys, so it is 0600 like the identity.
const StateFile = "desired-state.json"

const stateTmpPrefix = "." + StateFile + ".tmp-"

// savedState is StateFile: the last HeartbeatResponse, for the node it was
// sent to. A state saved under another node id (the node enrolled again in
// the same directory) is not this node's and is ignored.
type savedState struct {
	NodeID  string          `json:"node_id"`
	SavedAt time.Time       `json:"saved_at"`
	Desired json.RawMessage `json:"desired"` // protojson HeartbeatResponse
}

// encodeState is the content of StateFile for resp.
func encodeState(nodeID string, resp *agentv1.HeartbeatResponse, now time.Time) ([]byte, error) {
	desired, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("encode desired state: %w", err)
	}
	data, err := json.MarshalIndent(savedState{NodeID: nodeID, SavedAt: now.UTC(), Desired: desired}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode desired state: %w", err)
	}
	return append(data, '\n'), nil
}

// loadState reads StateFile from dir. It returns nil and no error when there
// is none, or when it belongs to another node.
func loadState(dir, nodeID string) (*agentv1.HeartbeatResponse, time.Time, error) {
	removeStateTemps(dir)
	path := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read desired state: %w", err)
	}
	var saved savedState
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, time.Time{}, fmt.Errorf("read desired state %s: %w", path, err)
	}
	if saved.NodeID != nodeID {
		return nil, time.Time{}, nil
	}
	resp := &agentv1.HeartbeatResponse{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(saved.Desired, resp); err != nil {
		return nil, time.Time{}, fmt.Errorf("read desired state %s: %w", path, err)
	}
	return resp, saved.SavedAt, nil
}

// writeState gives dir/StateFile the content data in one rename (mode
// 0600): a reader, or the agent after a crash, sees the old state or the
// whole new one.
func writeState(dir string, data []byte) error {
	return atomicfile.Write(dir, StateFile, stateTmpPrefix+"*", data, 0o600)
}

// removeState removes dir/StateFile, if any.
func removeState(dir string) error {
	if err := os.Remove(filepath.Join(dir, StateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the saved desired state: %w", err)
	}
	return nil
}

// removeStateTemps removes what a write cut short by a crash left behind.
func removeStateTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), stateTmpPrefix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// inForce is desired less the assignments whose end has come at now. An
// expires_at that is set but not a valid time counts as passed: the node
// never keeps access it cannot tell the end of.
func inForce(desired []*agentv1.Assignment, now time.Time) []*agentv1.Assignment {
	kept := make([]*agentv1.Assignment, 0, len(desired))
	for _, a := range desired {
		if end := a.GetExpiresAt(); end != nil && (!end.IsValid() || !now.Before(end.AsTime())) {
			continue
		}
		kept = append(kept, a)
	}
	return kept
}

// nextExpiry is the earliest end after now among desired; zero if none.
func nextExpiry(desired []*agentv1.Assignment, now time.Time) time.Time {
	var next time.Time
	for _, a := range desired {
		end := a.GetExpiresAt()
		if end == nil || !end.IsValid() {
			continue
		}
		if t := end.AsTime(); t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}
