package enforcetest

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/gpulab/gpulab/agent/internal/enforce"
)

// Memory is an enforce.Enforcer that keeps the applied assignments in memory
// and counts the changes it makes, so tests can assert that a repeated Apply
// changed nothing. It is safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	applied map[string]enforce.Assignment
	changes int
}

var _ enforce.Enforcer = (*Memory)(nil)

// Apply implements enforce.Enforcer.
func (m *Memory) Apply(_ context.Context, a enforce.Assignment) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.applied[a.ID]; ok && equal(old, a) {
		return nil
	}
	if m.applied == nil {
		m.applied = make(map[string]enforce.Assignment)
	}
	m.applied[a.ID] = clone(a)
	m.changes++
	return nil
}

// Remove implements enforce.Enforcer.
func (m *Memory) Remove(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.applied[id]; !ok {
		return nil
	}
	delete(m.applied, id)
	m.changes++
	return nil
}

// Applied implements enforce.Enforcer.
func (m *Memory) Applied(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.applied)), nil
}

// Get returns the applied assignment with this id.
func (m *Memory) Get(id string) (enforce.Assignment, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.applied[id]
	return clone(a), ok
}

// Changes is the number of Apply and Remove calls that changed something.
func (m *Memory) Changes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changes
}

func equal(a, b enforce.Assignment) bool {
	return a.ID == b.ID && a.LinuxUsername == b.LinuxUsername && slices.Equal(a.GPUs, b.GPUs) &&
		a.CPUs == b.CPUs && a.RAMMB == b.RAMMB
}

// clone copies a so that a caller reusing its GPUs slice cannot change what
// Memory holds.
func clone(a enforce.Assignment) enforce.Assignment {
	a.GPUs = slices.Clone(a.GPUs)
	return a
}
