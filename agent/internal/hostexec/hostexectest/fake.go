package hostexectest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// ErrUnexpected is returned for a command the test did not script, so that a
// code path running something unforeseen fails loudly instead of passing on
// an empty answer.
var ErrUnexpected = errors.New("unexpected command")

// Result is the scripted outcome of one command line.
type Result struct {
	Stdout []byte
	Stderr []byte
	Err    error
}

// Fake is a hostexec.Runner that answers from a script and records every
// call. It is safe for concurrent use. The zero value answers every command
// with ErrUnexpected.
type Fake struct {
	mu      sync.Mutex
	results map[string]Result
	calls   [][]string
}

var _ hostexec.Runner = (*Fake)(nil)

// Set scripts the result of running exactly name with args.
func (f *Fake) Set(r Result, name string, args ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.results == nil {
		f.results = make(map[string]Result)
	}
	f.results[key(name, args)] = r
}

// Run implements hostexec.Runner.
func (f *Fake) Run(ctx context.Context, name string, args ...string) ([]byte, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, append([]string{name}, args...))
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("run %s: %w", name, err)
	}
	r, ok := f.results[key(name, args)]
	if !ok {
		return nil, nil, fmt.Errorf("run %s: %w: %s", name, ErrUnexpected, key(name, args))
	}
	return r.Stdout, r.Stderr, r.Err
}

// Calls returns every command line run so far, in order, each as
// [name, args...].
func (f *Fake) Calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]string, len(f.calls))
	for i, c := range f.calls {
		out[i] = slices.Clone(c)
	}
	return out
}

// key quotes each word so that ("a b") and ("a", "b") stay distinct.
func key(name string, args []string) string {
	words := make([]string, 0, len(args)+1)
	for _, w := range append([]string{name}, args...) {
		words = append(words, fmt.Sprintf("%q", w))
	}
	return strings.Join(words, " ")
}
