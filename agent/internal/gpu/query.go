package gpu

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// queryColumns is the number of columns QueryArgs asks for.
const queryColumns = 6

// ParseQueryGPU parses the output of `nvidia-smi` run with QueryArgs: one
// line per GPU, "index, uuid, name, memory.total (MiB), mig.mode.current,
// mig.mode.pending". Empty output is no GPUs. MIG devices are not in it.
func ParseQueryGPU(out []byte) ([]GPU, error) {
	r := csv.NewReader(bytes.NewReader(out))
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = queryColumns
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

	current, err := parseMIGMode(rec[4])
	if err != nil {
		return GPU{}, fmt.Errorf("GPU %d mig.mode.current: %w", index, err)
	}
	pending, err := parseMIGMode(rec[5])
	if err != nil {
		return GPU{}, fmt.Errorf("GPU %d mig.mode.pending: %w", index, err)
	}
	g.MIGCapable = current != migUnsupported || pending != migUnsupported
	g.MIGEnabled = current == migEnabled
	g.MIGEnabledAfterReset = pending == migEnabled
	return g, nil
}

type migMode int

const (
	migUnsupported migMode = iota
	migDisabled
	migEnabled
)

func parseMIGMode(v string) (migMode, error) {
	switch {
	case v == "Enabled":
		return migEnabled, nil
	case v == "Disabled":
		return migDisabled, nil
	case notAvailable(v):
		// GPUs without MIG support report no MIG mode at all.
		return migUnsupported, nil
	default:
		return 0, fmt.Errorf("%q is not Enabled, Disabled or [N/A]", v)
	}
}

// notAvailable reports nvidia-smi's placeholders for a value it cannot give:
// "[N/A]", "[Not Supported]", and the other bracketed reasons such as
// "[Unknown Error]" or "[Insufficient Permissions]".
func notAvailable(v string) bool {
	return v == "N/A" || len(v) >= 2 && v[0] == '[' && v[len(v)-1] == ']'
}
