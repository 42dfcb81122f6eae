package mig

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gpulab/gpulab/agent/internal/enforce"
	"github.com/gpulab/gpulab/agent/internal/enforce/enforcetest"
	"github.com/gpulab/gpulab/agent/internal/enforce/mig/migtest"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/sshd"
)

const (
	uuid0 = "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02"
	uuid1 = "GPU-cbed321d-8053-4ea9-900d-454ccfcb1d4d"
)

var ctx = context.Background()

// env is a fake node: nvidia-smi over fake GPUs, and sshd and systemctl over
// a fake root holding the drop-in directory.
type env struct {
	t        *testing.T
	fake     *migtest.Fake
	root     string
	stateDir string
}

func newEnv(t *testing.T, m migtest.Model, uuids ...string) *env {
	t.Helper()
	v := &env{t: t, fake: migtest.New(m, uuids...), root: t.TempDir(), stateDir: filepath.Join(t.TempDir(), "state")}
	// A node booted with systemd, whose sshd is reloaded through its unit.
	for _, d := range []string{sshd.DropInDir, "/run/systemd/system"} {
		if err := os.MkdirAll(filepath.Join(v.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	v.fake.SSHDRoot = v.root
	return v
}

// enforcer is a new Enforcer over the node, as after an agent restart.
func (v *env) enforcer() *Enforcer {
	return New(hostexec.Host{Root: v.root, Runner: v.fake}, nil, Config{StateDir: v.stateDir})
}

func (v *env) dropIn(user string) (string, bool) {
	data, err := os.ReadFile(filepath.Join(v.root, sshd.DropInDir, "10-gpulab-mig-"+user+".conf"))
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		v.t.Fatal(err)
	}
	return string(data), true
}

// visible is the CUDA_VISIBLE_DEVICES the user's drop-in sets.
func (v *env) visible(user string) string {
	d, ok := v.dropIn(user)
	if !ok {
		v.t.Fatalf("%s has no mig drop-in", user)
	}
	for line := range strings.Lines(d) {
		if val, ok := strings.CutPrefix(strings.TrimSpace(line), "SetEnv CUDA_VISIBLE_DEVICES="); ok {
			return val
		}
	}
	v.t.Fatalf("drop-in sets no CUDA_VISIBLE_DEVICES:\n%s", d)
	return ""
}

func (v *env) state() *state {
	data, err := os.ReadFile(filepath.Join(v.stateDir, StateFile))
	if err != nil {
		v.t.Fatal(err)
	}
	st := &state{}
	if err := json.Unmarshal(data, st); err != nil {
		v.t.Fatal(err)
	}
	return st
}

// mutations takes the fake's calls and returns those that create or
// destroy MIG instances.
func (v *env) mutations() [][]string {
	return slices.DeleteFunc(v.fake.Calls(), func(c []string) bool { return !migtest.Mutating(c) })
}

func (v *env) instances() []migtest.Instance { return v.fake.Instances() }

// uuids are the MIG devices of the fake, in its order.
func (v *env) uuids() []string {
	var out []string
	for _, in := range v.instances() {
		out = append(out, in.UUID)
	}
	return out
}

func assign(id string, profile string, uuids ...string) enforce.Assignment {
	a := enforce.Assignment{ID: id, LinuxUsername: "alice", MIGProfile: profile}
	for i, u := range uuids {
		a.GPUs = append(a.GPUs, enforce.GPU{Index: i, UUID: u})
	}
	return a
}

func mustApply(t *testing.T, e *Enforcer, a enforce.Assignment) {
	t.Helper()
	if err := e.Apply(ctx, a); err != nil {
		t.Fatalf("Apply %s: %v", a.ID, err)
	}
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one saying %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

func TestMIGKeepsTheEnforcerContract(t *testing.T) {
	enforcetest.Conformance(t, func(t *testing.T) enforce.Enforcer {
		return newEnv(t, migtest.A100SXM440GB, uuid0).enforcer()
	})
}

func TestApplyCreatesAnInstanceOnEachGPUAndExposesOnlyThose(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0, uuid1)
	e := v.enforcer()
	// Another assignment's instance on GPU 0 must stay hidden from alice.
	mustApply(t, e, enforce.Assignment{ID: "b-1", LinuxUsername: "bob", MIGProfile: "1g.5gb", GPUs: []enforce.GPU{{Index: 0, UUID: uuid0}}})
	bobs := v.uuids()
	v.fake.Calls()

	mustApply(t, e, assign("a-1", "3g.20gb", uuid1, uuid0))
	if got, want := v.mutations(), [][]string{
		{"nvidia-smi", "mig", "-i", "1", "-cgi", "3g.20gb", "-C"},
		{"nvidia-smi", "mig", "-i", "0", "-cgi", "3g.20gb", "-C"},
	}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("mutations = %q, want %q", got, want)
	}
	var alice []string // GPU 0's first, as CUDA will number them
	for _, in := range v.instances() {
		if in.Profile == "3g.20gb" && in.GPU == uuid0 {
			alice = append([]string{in.UUID}, alice...)
		} else if in.Profile == "3g.20gb" {
			alice = append(alice, in.UUID)
		}
	}
	if len(alice) != 2 {
		t.Fatalf("instances = %+v, want one 3g.20gb on each GPU", v.instances())
	}
	if got, want := v.visible("alice"), strings.Join(alice, ","); got != want {
		t.Errorf("alice's CUDA_VISIBLE_DEVICES = %q, want %q", got, want)
	}
	if got := v.visible("bob"); got != bobs[0] {
		t.Errorf("bob's CUDA_VISIBLE_DEVICES = %q, want %q", got, bobs[0])
	}
	rec := v.state().Assignments["a-1"]
	if rec == nil || len(rec.Instances) != 2 || rec.Instances[0].GPUUUID != uuid1 || rec.Instances[0].GPUIndex != 1 || rec.Instances[0].MIGUUID != alice[1] {
		t.Errorf("state record = %+v", rec)
	}
	if fi, err := os.Stat(filepath.Join(v.stateDir, StateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	if got, err := e.Applied(ctx); err != nil || !slices.Equal(got, []string{"a-1", "b-1"}) {
		t.Errorf("Applied = %q, %v", got, err)
	}
}

func TestARepeatedApplyChangesNothing(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0, uuid1)
	a := assign("a-1", "2g.10gb", uuid0, uuid1)
	mustApply(t, v.enforcer(), a)
	before, _ := os.ReadFile(filepath.Join(v.stateDir, StateFile))
	dropIn, _ := v.dropIn("alice")
	v.fake.Calls()

	e := v.enforcer() // a restarted agent: only the host and the state file know
	for i := range 2 {
		mustApply(t, e, a)
		calls := v.fake.Calls()
		if m := slices.DeleteFunc(slices.Clone(calls), func(c []string) bool { return !migtest.Mutating(c) }); len(m) != 0 {
			t.Errorf("Apply #%d ran %q", i+1, m)
		}
		// The restarted enforcer reloads sshd once; after that, only
		// nvidia-smi's read-only lists run.
		if i == 1 && slices.ContainsFunc(calls, func(c []string) bool { return c[0] != "nvidia-smi" }) {
			t.Errorf("second Apply ran %q, want only nvidia-smi listings", calls)
		}
	}
	after, _ := os.ReadFile(filepath.Join(v.stateDir, StateFile))
	if d, _ := v.dropIn("alice"); string(before) != string(after) || d != dropIn {
		t.Errorf("state or drop-in changed:\n%s\n%s", after, d)
	}
	if n := len(v.instances()); n != 2 {
		t.Errorf("%d instances, want 2", n)
	}
}

func TestAnEmptyProfileIsTheLargestTheGPUOffers(t *testing.T) {
	for _, tt := range []struct {
		model migtest.Model
		want  string
	}{{migtest.A100SXM440GB, "7g.40gb"}, {migtest.H10080GBHBM3, "7g.80gb"}} {
		t.Run(tt.model.Name, func(t *testing.T) {
			v := newEnv(t, tt.model, uuid0)
			e := v.enforcer()
			mustApply(t, e, assign("a-1", "", uuid0))
			if in := v.instances(); len(in) != 1 || in[0].Profile != tt.want {
				t.Fatalf("instances = %+v, want one %s", in, tt.want)
			}
			// Naming the largest explicitly, and then not, is the same.
			v.fake.Calls()
			mustApply(t, e, assign("a-1", tt.want, uuid0))
			mustApply(t, e, assign("a-1", "", uuid0))
			if m := v.mutations(); len(m) != 0 {
				t.Errorf("re-applying the same profile ran %q", m)
			}
		})
	}
}

func TestAChangedAssignmentDestroysWhatNoLongerMatchesAndCreatesTheRest(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0, uuid1)
	e := v.enforcer()
	mustApply(t, e, assign("a-1", "1g.5gb", uuid0, uuid1))
	old := v.state().Assignments["a-1"].Instances
	v.fake.Calls()

	// GPU 0 leaves, GPU 1 changes profile.
	mustApply(t, e, assign("a-1", "2g.10gb", uuid1))
	if got, want := v.mutations(), [][]string{
		{"nvidia-smi", "mig", "-i", "0", "-dci", "-gi", "1", "-ci", "0"},
		{"nvidia-smi", "mig", "-i", "0", "-dgi", "-gi", "1"},
		{"nvidia-smi", "mig", "-i", "1", "-dci", "-gi", "1", "-ci", "0"},
		{"nvidia-smi", "mig", "-i", "1", "-dgi", "-gi", "1"},
		{"nvidia-smi", "mig", "-i", "1", "-cgi", "2g.10gb", "-C"},
	}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("mutations = %q, want %q", got, want)
	}
	in := v.instances()
	if len(in) != 1 || in[0].GPU != uuid1 || in[0].Profile != "2g.10gb" {
		t.Fatalf("instances = %+v, want one 2g.10gb on GPU 1", in)
	}
	if got := v.visible("alice"); got != in[0].UUID || got == old[1].MIGUUID {
		t.Errorf("CUDA_VISIBLE_DEVICES = %q, want only the new %s", got, in[0].UUID)
	}
}

func TestAnInstanceAGPUResetDestroyedIsCreatedAgain(t *testing.T) {
	v := newEnv(t, migtest.A100SXM440GB, uuid0)
	e := v.enforcer()
	mustApply(t, e, assign("a-1", "3g.20gb", uuid0))
	gone := v.uuids()[0]
	v.fake.Reset(uuid0)
	v.fake.Calls()

	mustApply(t, e, assign("a-1", "3g.20gb", uuid0))
	if m := v.mutations(); len(m) != 1 || !slices.Contains(m[0], "-cgi") {
		t.Errorf("mutations = %q, want one -cgi and no destroy of what is gone", m)
	}
	now := v.uuids()
	if len(now) != 1 || now[0] == gone {
		t.Fatalf("MIG devices = %q, want one new", now)
	}
	if got := v.visible("alice"); got != now[0] {
		t.Errorf("CUDA_VISIBLE_DEVICES = %q, want %q", got, now[0])
	}
}
