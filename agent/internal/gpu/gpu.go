package gpu

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

// GPU is one physical NVIDIA GPU.
type GPU struct {
	// Index is nvidia-smi's 0-based index; it can change across reboots.
	Index int
	// UUID is the stable identity, e.g. "GPU-6b8d5fb2-...".
	UUID string
	// Name is the product name, e.g. "NVIDIA H100 80GB HBM3".
	Name string
	// MemoryMB is the total framebuffer memory in MiB; 0 where nvidia-smi
	// reports none (GPUs sharing system memory).
	MemoryMB int64
	// MIGCapable is whether the GPU supports Multi-Instance GPU.
	MIGCapable bool
	// MIGEnabled is whether MIG mode is currently on.
	MIGEnabled bool
}

// Discoverer lists the node's GPUs. See the package documentation for the
// contract.
type Discoverer interface {
	Discover(ctx context.Context) ([]GPU, error)
}

// QueryArgs are the nvidia-smi arguments NvidiaSMI runs with; ParseQueryGPU
// reads exactly the columns they ask for, in this order.
var QueryArgs = []string{
	"--query-gpu=index,uuid,name,memory.total,mig.mode.current",
	"--format=csv,noheader,nounits",
}

// NvidiaSMI is the Discoverer that asks nvidia-smi.
type NvidiaSMI struct {
	Runner hostexec.Runner
}

var _ Discoverer = NvidiaSMI{}

// Discover implements Discoverer.
func (d NvidiaSMI) Discover(ctx context.Context) ([]GPU, error) {
	stdout, stderr, err := d.Runner.Run(ctx, "nvidia-smi", QueryArgs...)
	if errors.Is(err, hostexec.ErrNotFound) {
		return nil, nil
	}
	// With the driver installed but no GPU present, nvidia-smi prints this
	// on stdout and exits 6 ("a query to find an object was unsuccessful").
	if bytes.Contains(stdout, []byte("No devices were found")) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("query GPUs with nvidia-smi: %w: %s", err, diagnostic(stdout, stderr))
	}
	gpus, err := ParseQueryGPU(stdout)
	if err != nil {
		return nil, fmt.Errorf("parse nvidia-smi GPU list: %w", err)
	}
	return gpus, nil
}

// ParseQueryGPU parses the output of `nvidia-smi` run with QueryArgs: one
// line per GPU, "index, uuid, name, memory.total (MiB), mig.mode.current".
func ParseQueryGPU(out []byte) ([]GPU, error) {
	r := csv.NewReader(bytes.NewReader(out))
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = 5
	// nvidia-smi does not quote fields; a stray quote in a name is literal.
	r.LazyQuotes = true

	var gpus []GPU
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read CSV: %w", err)
		}
		line, _ := r.FieldPos(0)
		g, err := parseRecord(rec)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		gpus = append(gpus, g)
	}
	slices.SortStableFunc(gpus, func(a, b GPU) int { return a.Index - b.Index })
	return gpus, nil
}

func parseRecord(rec []string) (GPU, error) {
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	index, err := strconv.Atoi(rec[0])
	if err != nil || index < 0 {
		return GPU{}, fmt.Errorf("index %q is not a GPU index", rec[0])
	}
	if rec[1] == "" || notAvailable(rec[1]) {
		return GPU{}, fmt.Errorf("GPU %d has no UUID (%q)", index, rec[1])
	}
	g := GPU{Index: index, UUID: rec[1], Name: rec[2]}

	if !notAvailable(rec[3]) {
		if g.MemoryMB, err = strconv.ParseInt(rec[3], 10, 64); err != nil || g.MemoryMB < 0 {
			return GPU{}, fmt.Errorf("GPU %d memory.total %q is not a number of MiB", index, rec[3])
		}
	}

	switch mode := rec[4]; {
	case mode == "Enabled":
		g.MIGCapable, g.MIGEnabled = true, true
	case mode == "Disabled":
		g.MIGCapable = true
	case notAvailable(mode):
		// GPUs without MIG support report no MIG mode at all.
	default:
		return GPU{}, fmt.Errorf("GPU %d mig.mode.current %q is not Enabled, Disabled or [N/A]", index, mode)
	}
	return g, nil
}

// notAvailable reports nvidia-smi's placeholders for a value the GPU does not
// have: "[N/A]" and "[Not Supported]".
func notAvailable(v string) bool {
	return v == "[N/A]" || v == "[Not Supported]"
}

// diagnostic is the first line nvidia-smi wrote about its failure. It writes
// most of its errors to stdout, so stderr alone is often empty.
func diagnostic(stdout, stderr []byte) string {
	for _, b := range [][]byte{stderr, stdout} {
		if s := strings.TrimSpace(string(b)); s != "" {
			first, _, _ := strings.Cut(s, "\n")
			return first
		}
	}
	return "no output"
}
