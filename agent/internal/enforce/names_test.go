package enforce

import (
	"strings"
	"testing"
)

func TestCheckNames(t *testing.T) {
	const board, mig = "GPU-ee71c7e5-5947-4a1f-a220-6a316a1c0f02", "MIG-ee71c7e5-5947-4a1f-a220-6a316a1c0f02"
	ok := Assignment{ID: "6f1c1d2e-8a4b-4f7e-9b7a-2d7f0e3c5a11", LinuxUsername: "gpulab-alice", GPUs: []GPU{{0, board}}}
	if err := CheckNames("soft", ok, false); err != nil {
		t.Errorf("CheckNames(%+v) = %v", ok, err)
	}
	withMIG := ok
	withMIG.GPUs = []GPU{{0, mig}}
	if err := CheckNames("mig", withMIG, true); err != nil {
		t.Errorf("a MIG device in the mig mode: %v", err)
	}
	for name, tc := range map[string]struct {
		a    Assignment
		want string
	}{
		"MIG device elsewhere": {withMIG, `soft enforcement: GPU 0 has UUID "MIG-`},
		"dot-dot id":           {Assignment{ID: "..", LinuxUsername: "alice"}, "assignment id"},
		"newline in id":        {Assignment{ID: "a\nb", LinuxUsername: "alice"}, "assignment id"},
		"option-like id":       {Assignment{ID: "-rf", LinuxUsername: "alice"}, "assignment id"},
		"pattern in user":      {Assignment{ID: "a-1", LinuxUsername: "al*ce"}, "linux username"},
		"bare uuid":            {Assignment{ID: "a-1", LinuxUsername: "alice", GPUs: []GPU{{0, board[4:]}}}, "not GPU-<uuid>"},
	} {
		if err := CheckNames("soft", tc.a, false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckNames = %v, want an error containing %q", name, err, tc.want)
		}
	}
}
