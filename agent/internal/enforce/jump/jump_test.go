package jump

import (
	"fmt"
	"strings"
	"testing"
)

func targets(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("10.%d.%d.1:22", i/256, i%256)
	}
	return out
}

func TestAtMostMaxPermitOpenTargets(t *testing.T) {
	if _, err := ValidatePermitOpen(targets(MaxPermitOpen)); err != nil {
		t.Errorf("%d targets: %v, want accepted", MaxPermitOpen, err)
	}
	if _, err := ValidatePermitOpen(targets(MaxPermitOpen + 1)); err == nil || !strings.Contains(err.Error(), "more than 256") {
		t.Errorf("%d targets: %v, want refused", MaxPermitOpen+1, err)
	}
}

func TestTargetsAreWrittenInSshdsSpelling(t *testing.T) {
	got, err := ValidatePermitOpen([]string{"10.0.0.5:22", "[FD00:0::7]:2222", "[::ffff:10.0.0.9]:1", "10.0.0.5:65535"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.5:22", "[fd00::7]:2222", "[::ffff:10.0.0.9]:1", "10.0.0.5:65535"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAKeyLineLongerThanSshdReadsIsRefused(t *testing.T) {
	dests := []string{"10.0.0.5:22"}
	prefix := len(`restrict,port-forwarding,permitopen="10.0.0.5:22" `)
	if _, err := KeyLine(strings.Repeat("k", maxKeyLine-prefix), dests); err != nil {
		t.Errorf("a line of exactly %d bytes: %v, want accepted", maxKeyLine, err)
	}
	if _, err := KeyLine(strings.Repeat("k", maxKeyLine-prefix+1), dests); err == nil {
		t.Errorf("a line of %d bytes was accepted", maxKeyLine+1)
	}
}
