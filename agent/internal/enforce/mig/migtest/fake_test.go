package migtest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/gpu"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
)

const uuid0 = "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02"

func run(t *testing.T, f *Fake, args ...string) (string, error) {
	t.Helper()
	out, _, err := f.Run(context.Background(), "nvidia-smi", args...)
	return string(out), err
}

// The MIG User Guide's example of a geometry an A100 40GB refuses: two
// 3g.20gb take all 8 memory slices, so a 1g.5gb no longer fits.
func TestTheCapacityModelRefusesWhatAnA100Refuses(t *testing.T) {
	f := New(A100SXM440GB, uuid0)
	out, err := run(t, f, "mig", "-i", "0", "-cgi", "3g.20gb,3g.20gb,1g.5gb", "-C")
	if err == nil || !strings.Contains(out, "Unable to create a GPU instance on GPU  0 using profile 1g.5gb: Insufficient Resources") {
		t.Errorf("-cgi = %q, %v; want the third refused", out, err)
	}
	if n := len(f.Instances()); n != 2 {
		t.Errorf("%d instances, want the two created before the refusal", n)
	}

	f = New(A100SXM440GB, uuid0)
	if out, err := run(t, f, "mig", "-cgi", "19,19,19,19,19,19,19", "-C"); err != nil {
		t.Fatalf("seven 1g.5gb: %v\n%s", err, out)
	}
	if out, err := run(t, f, "mig", "-cgi", "19"); err == nil {
		t.Errorf("an eighth 1g.5gb was created:\n%s", out)
	}
}

func TestTheOutputsParseWithTheAgentsParsers(t *testing.T) {
	f := New(H10080GBHBM3, uuid0, "GPU-cbed321d-8053-4ea9-900d-454ccfcb1d4d")
	f.GPUs[1].MIGEnabled = false
	if _, err := run(t, f, "mig", "-i", "0", "-cgi", "1g.10gb+me,3g.40gb", "-C"); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, f, gpu.QueryArgs...)
	if err != nil {
		t.Fatal(err)
	}
	gpus, err := gpu.ParseQueryGPU([]byte(out))
	if err != nil || len(gpus) != 2 || !gpus[0].MIGEnabled || gpus[1].MIGEnabled || gpus[0].MemoryMB != 81559 {
		t.Errorf("ParseQueryGPU(%q) = %+v, %v", out, gpus, err)
	}
	out, err = run(t, f, "-L")
	if err != nil {
		t.Fatal(err)
	}
	devs, err := gpu.ParseList([]byte(out))
	if d := devs[uuid0]; err != nil || len(d) != 2 || d[0].Profile != "1g.10gb+me" || d[1].Profile != "3g.40gb" {
		t.Errorf("ParseList(%q) = %+v, %v", out, devs, err)
	}
	if out, err := run(t, f, "mig", "-i", "1", "-lgi"); err == nil || out != "No MIG-enabled devices found.\n" {
		t.Errorf("-lgi on a GPU without MIG mode = %q, %v", out, err)
	}
}

func TestAMissingNvidiaSMIMatchesErrNotFound(t *testing.T) {
	f := New(A100SXM440GB, uuid0)
	f.Missing = true
	if _, err := run(t, f, "-L"); !errors.Is(err, hostexec.ErrNotFound) {
		t.Errorf("error = %v, want one matching hostexec.ErrNotFound", err)
	}
}
