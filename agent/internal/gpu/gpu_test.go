package gpu

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpulab/gpulab/agent/internal/gpu/gputest"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/hostexec/hostexectest"
)

// The tests through hostexec.Exec run a real process: testdata/fake-nvidia-smi,
// installed first on PATH as nvidia-smi, replays a recording.

func TestDiscoverRecordedHostsThroughNvidiaSMI(t *testing.T) {
	for _, tt := range recorded {
		t.Run(tt.dir, func(t *testing.T) {
			gputest.UseFakeNvidiaSMI(t, tt.dir)
			got, err := (&NvidiaSMI{Runner: hostexec.Exec{}}).Discover(context.Background())
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Discover =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestDiscoverOnANodeWithoutNvidiaSMIFindsNoGPUsAndNoError(t *testing.T) {
	gputest.UseNoNvidiaSMI(t)
	got, err := (&NvidiaSMI{Runner: hostexec.Exec{}}).Discover(context.Background())
	if err != nil || len(got) != 0 {
		t.Errorf("Discover = %+v, %v; want no GPUs and no error", got, err)
	}
}

func TestDiscoverWhenNvidiaSMIFails(t *testing.T) {
	tests := []struct {
		recording string
		wantErr   []string // in the message; none: no error
	}{
		// The driver is there but no GPU: not an error, a CPU node.
		{recording: "no-devices"},
		{recording: "driver-not-loaded", wantErr: []string{
			"exit status 9", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver",
		}},
		{recording: "driver-library-mismatch", wantErr: []string{
			"exit status 18", "Failed to initialize NVML: Driver/library version mismatch",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.recording, func(t *testing.T) {
			gputest.UseFakeNvidiaSMI(t, tt.recording)
			got, err := (&NvidiaSMI{Runner: hostexec.Exec{}}).Discover(context.Background())
			if len(got) != 0 {
				t.Errorf("Discover found %+v, want no GPUs", got)
			}
			if len(tt.wantErr) == 0 && err != nil {
				t.Errorf("Discover error = %v, want none", err)
			}
			for _, want := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Discover error = %v, want %q in it", err, want)
				}
			}
		})
	}
}

func TestDiscoverGivesUpOnAHungNvidiaSMI(t *testing.T) {
	gputest.UseFakeNvidiaSMI(t, "hung-driver")
	d := &NvidiaSMI{Runner: hostexec.Exec{}, Timeout: 100 * time.Millisecond}

	start := time.Now()
	got, err := d.Discover(context.Background())
	if !errors.Is(err, ErrTimeout) || len(got) != 0 {
		t.Errorf("Discover = %+v, %v; want no GPUs and ErrTimeout", got, err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Discover returned after %v, want it to stop at its 100ms timeout", elapsed)
	}
}

func TestDiscoverStartsNoNvidiaSMIWhileAHungOneHasNotExited(t *testing.T) {
	// A process blocked in the driver outlives SIGKILL, so the runner does
	// not return even after its context ends.
	r := &unkillableRunner{release: make(chan struct{}), calls: make(chan struct{}, 10)}
	d := &NvidiaSMI{Runner: r, Timeout: 50 * time.Millisecond}

	if _, err := d.Discover(context.Background()); !errors.Is(err, ErrTimeout) {
		t.Fatalf("first Discover error = %v, want ErrTimeout", err)
	}
	if _, err := d.Discover(context.Background()); !errors.Is(err, ErrStuck) {
		t.Errorf("second Discover error = %v, want ErrStuck", err)
	}
	if n := len(r.calls); n != 1 {
		t.Errorf("nvidia-smi started %d times, want once while the first is stuck", n)
	}

	// Once the stuck process exits, discovery runs nvidia-smi again.
	close(r.release)
	deadline := time.Now().Add(5 * time.Second)
	for d.stuck.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if _, err := d.Discover(context.Background()); err != nil {
		t.Errorf("Discover after the stuck run exited: %v", err)
	}
}

func TestDiscoverStopsWhenTheCallerCancels(t *testing.T) {
	gputest.UseFakeNvidiaSMI(t, "hung-driver")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := (&NvidiaSMI{Runner: hostexec.Exec{}}).Discover(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
		t.Errorf("Discover error = %v, want the caller's context.DeadlineExceeded", err)
	}
}

func TestDiscoverListsMIGDevicesOnlyWhenAGPUIsInMIGMode(t *testing.T) {
	var fake hostexectest.Fake // fails nvidia-smi -L: it is not scripted
	fake.Set(hostexectest.Result{Stdout: readTestdata(t, "h100-80gb-hbm3-x4", "query-gpu.csv")}, "nvidia-smi", QueryArgs...)

	got, err := (&NvidiaSMI{Runner: &fake}).Discover(context.Background())
	if err != nil || len(got) != 4 {
		t.Fatalf("Discover = %+v, %v; want the four H100s", got, err)
	}
	if calls := fake.Calls(); len(calls) != 1 || !slices.Equal(calls[0], append([]string{"nvidia-smi"}, QueryArgs...)) {
		t.Errorf("ran %q, want only the query", calls)
	}
}

func TestDiscoverKeepsTheGPUsWhenListingMIGDevicesFails(t *testing.T) {
	var fake hostexectest.Fake
	fake.Set(hostexectest.Result{Stdout: readTestdata(t, "a100-sxm4-80gb-x4-mig", "query-gpu.csv")}, "nvidia-smi", QueryArgs...)
	fake.Set(hostexectest.Result{Err: errors.New("exit status 15")}, "nvidia-smi", ListArgs...)

	got, err := (&NvidiaSMI{Runner: &fake}).Discover(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exit status 15") {
		t.Errorf("Discover error = %v, want the failure of nvidia-smi -L", err)
	}
	if want := withoutMIGDevices(recorded[0].want); !reflect.DeepEqual(got, want) {
		t.Errorf("Discover =\n%+v\nwant the GPUs without MIG devices\n%+v", got, want)
	}
}

// unkillableRunner is a hostexec.Runner whose commands ignore their context
// and return (with no output) only once release is closed, like nvidia-smi
// blocked in a wedged driver.
type unkillableRunner struct {
	release chan struct{}
	calls   chan struct{}
}

func (r *unkillableRunner) Run(_ context.Context, _ string, _ ...string) ([]byte, []byte, error) {
	r.calls <- struct{}{}
	<-r.release
	return nil, nil, nil
}
