package gpu

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

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
	// MIGEnabledAfterReset is the pending MIG mode: a change of mode takes
	// effect at the next GPU reset, so it differs from MIGEnabled until then.
	MIGEnabledAfterReset bool
	// MIGDevices are the GPU's MIG devices, in nvidia-smi -L order; empty
	// unless MIG mode is on and instances were created.
	MIGDevices []MIGDevice
}

// MIGDevice is one MIG device: a compute instance inside a GPU instance,
// what CUDA and container runtimes see as a GPU of its own.
type MIGDevice struct {
	// Index is nvidia-smi's index of the device under its GPU ("Device  0").
	Index int
	// Profile is the device's profile, e.g. "1g.10gb", "3g.40gb",
	// "1g.10gb+me" (with a media engine) or "1c.3g.40gb" (one compute slice
	// of a 3g.40gb GPU instance shared with other compute instances).
	Profile string
	// UUID names the device to CUDA_VISIBLE_DEVICES and container runtimes:
	// "MIG-<uuid>", or "MIG-GPU-<gpu uuid>/<gi>/<ci>" from drivers before R470.
	UUID string
}

// Discoverer lists the node's GPUs. See the package documentation for the
// contract.
type Discoverer interface {
	Discover(ctx context.Context) ([]GPU, error)
}

// QueryArgs are the nvidia-smi arguments that list the GPUs; ParseQueryGPU
// reads exactly the columns they ask for, in this order.
var QueryArgs = []string{
	"--query-gpu=index,uuid,name,memory.total,mig.mode.current,mig.mode.pending",
	"--format=csv,noheader,nounits",
}

// ListArgs are the nvidia-smi arguments that list the GPUs with their MIG
// devices, which no --query-gpu column reports; ParseList reads the output.
var ListArgs = []string{"-L"}

// DefaultTimeout bounds each nvidia-smi run when NvidiaSMI.Timeout is zero.
// nvidia-smi answers in well under a second with persistence mode on, and in
// a few seconds without it on an 8-GPU node (the driver initialises every
// GPU first); a wedged driver makes it hang for minutes. 10 s covers the
// first and still leaves the 30 s heartbeat on time.
const DefaultTimeout = 10 * time.Second

var (
	// ErrTimeout means nvidia-smi did not answer within the timeout.
	ErrTimeout = errors.New("nvidia-smi did not answer in time")
	// ErrStuck means an earlier nvidia-smi that timed out has still not
	// exited, so none is started.
	ErrStuck = errors.New("an earlier nvidia-smi that timed out has still not exited")
)

// NvidiaSMI is the Discoverer that asks nvidia-smi. Use it by pointer: it
// remembers runs that outlived their timeout.
type NvidiaSMI struct {
	Runner hostexec.Runner
	// Timeout bounds each nvidia-smi run; DefaultTimeout when zero.
	Timeout time.Duration

	// stuck counts runs that timed out and have not returned yet. A process
	// blocked in the driver cannot be killed (SIGKILL waits for the kernel
	// call to return), so the runner may never return; starting another
	// nvidia-smi every heartbeat would only pile them up.
	stuck atomic.Int32
}

var _ Discoverer = (*NvidiaSMI)(nil)

// Discover implements Discoverer. When the GPUs were listed but their MIG
// devices could not be, it returns the GPUs and an error.
func (d *NvidiaSMI) Discover(ctx context.Context) ([]GPU, error) {
	stdout, stderr, err := d.run(ctx, QueryArgs)
	if errors.Is(err, hostexec.ErrNotFound) {
		return nil, nil
	}
	// With the driver installed but no GPU present, nvidia-smi prints this
	// on stdout and exits 6 ("a query to find an object was unsuccessful").
	if bytes.Contains(stdout, []byte("No devices were found")) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("query GPUs with nvidia-smi: %w", withDiagnostic(err, stdout, stderr))
	}
	gpus, err := ParseQueryGPU(stdout)
	if err != nil {
		return nil, fmt.Errorf("parse nvidia-smi GPU list: %w", err)
	}

	// Only a GPU in MIG mode has MIG devices: spare the other nodes a run.
	if !slices.ContainsFunc(gpus, func(g GPU) bool { return g.MIGEnabled }) {
		return gpus, nil
	}
	stdout, stderr, err = d.run(ctx, ListArgs)
	if err != nil {
		return gpus, fmt.Errorf("list MIG devices with nvidia-smi -L: %w", withDiagnostic(err, stdout, stderr))
	}
	devices, err := ParseList(stdout)
	if err != nil {
		return gpus, fmt.Errorf("parse nvidia-smi -L: %w", err)
	}
	for i := range gpus {
		gpus[i].MIGDevices = devices[gpus[i].UUID]
	}
	return gpus, nil
}

// run runs nvidia-smi with args and gives up after the timeout even if the
// runner does not return.
func (d *NvidiaSMI) run(ctx context.Context, args []string) (stdout, stderr []byte, err error) {
	if n := d.stuck.Load(); n > 0 {
		return nil, nil, fmt.Errorf("run nvidia-smi: %w (%d still running)", ErrStuck, n)
	}
	timeout := cmp.Or(d.Timeout, DefaultTimeout)
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	type result struct {
		stdout, stderr []byte
		err            error
	}
	done := make(chan result, 1)
	go func() {
		stdout, stderr, err := d.Runner.Run(runCtx, "nvidia-smi", args...)
		done <- result{stdout, stderr, err}
	}()

	select {
	case r := <-done:
		if r.err != nil && runCtx.Err() != nil {
			return nil, nil, d.expired(ctx, args, timeout)
		}
		return r.stdout, r.stderr, r.err
	case <-runCtx.Done():
		// The runner has been told to kill nvidia-smi; count it as stuck
		// until it returns, which it does at once unless the process is
		// blocked in the driver.
		d.stuck.Add(1)
		go func() {
			<-done
			d.stuck.Add(-1)
		}()
		return nil, nil, d.expired(ctx, args, timeout)
	}
}

// expired is the error for a run cut short: by the caller's context, or by
// the timeout.
func (d *NvidiaSMI) expired(ctx context.Context, args []string, timeout time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run nvidia-smi: %w", err)
	}
	return fmt.Errorf("run nvidia-smi %s: %w: no answer within %v, a sign of a hung NVIDIA driver",
		strings.Join(args, " "), ErrTimeout, timeout)
}

// withDiagnostic adds to err the first line nvidia-smi wrote about its
// failure. It writes most of its errors to stdout, so stderr alone is often
// empty.
func withDiagnostic(err error, stdout, stderr []byte) error {
	for _, b := range [][]byte{stderr, stdout} {
		if s := strings.TrimSpace(string(b)); s != "" {
			first, _, _ := strings.Cut(s, "\n")
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(first))
		}
	}
	return err
}
