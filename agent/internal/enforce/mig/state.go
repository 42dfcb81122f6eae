package mig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gpulab/gpulab/agent/internal/atomicfile"
)

// StateFile is the state's file name in Config.StateDir.
const StateFile = "mig.json"

// state is what the enforcer created, kept on disk because nvidia-smi does
// not say who created an instance: only this file tells the instances of an
// assignment from those of another, or from an admin's.
type state struct {
	Assignments map[string]*record `json:"assignments"`
}

// record is one assignment's instances.
type record struct {
	// Profile is the profile as requested; "" asked for the largest, so an
	// instance created for "" still matches a later "".
	Profile   string     `json:"profile"`
	Instances []instance `json:"instances"`
}

// instance is one GPU instance with its default compute instance: one MIG
// device.
type instance struct {
	GPUUUID string `json:"gpu_uuid"`
	// GPUIndex is the GPU's index when last seen; the UUID is authoritative
	// and the index is looked up again before each command.
	GPUIndex int    `json:"gpu_index"`
	GI       int    `json:"gi"`
	CI       int    `json:"ci"`
	MIGUUID  string `json:"mig_uuid"`
	Profile  string `json:"profile"`
	// Destroying is set, and saved, before the first destroy command, so
	// that a GPU instance whose compute instance is already gone (and with
	// it the MIG UUID) is still known to be ours after a crash in between.
	Destroying bool `json:"destroying,omitempty"`
}

func (e *Enforcer) statePath() string { return filepath.Join(e.cfg.StateDir, StateFile) }

// load reads the state; a missing file is an empty state. A file that does
// not parse is an error, not an empty state: forgetting it would leak every
// instance it records.
func (e *Enforcer) load() (*state, error) {
	st := &state{Assignments: make(map[string]*record)}
	data, err := os.ReadFile(e.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read MIG state: %w", err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("read MIG state %s: %w (repair it, or destroy the instances it lists with nvidia-smi mig -dci/-dgi and delete it)", e.statePath(), err)
	}
	if st.Assignments == nil {
		st.Assignments = make(map[string]*record)
	}
	for id, r := range st.Assignments {
		if r == nil {
			delete(st.Assignments, id)
		}
	}
	return st, nil
}

// save writes st when it differs from the file, so that an Apply that
// changes nothing writes nothing.
func (e *Enforcer) save(st *state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode MIG state: %w", err)
	}
	data = append(data, '\n')
	if old, err := os.ReadFile(e.statePath()); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(e.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("save MIG state: %w", err)
	}
	if err := atomicfile.Write(e.cfg.StateDir, StateFile, ".mig-*.tmp", data, 0o600); err != nil {
		return fmt.Errorf("save MIG state: %w", err)
	}
	return nil
}
