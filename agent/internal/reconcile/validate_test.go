package reconcile

import (
	"strings"
	"testing"
)

func TestEveryAcceptedKeyTypeValidatesAndIsTrimmed(t *testing.T) {
	for typ := range keyTypes {
		line := sshKey(typ, 7, "a comment with spaces")
		got, err := validateKey("  " + line + " \t")
		if err != nil {
			t.Errorf("%s: %v", typ, err)
		}
		if got != line {
			t.Errorf("%s: got %q, want %q", typ, got, line)
		}
	}
}

func TestUsernamesFollowThePortableRule(t *testing.T) {
	for _, ok := range []string{"alice", "_svc", "a", "user-1", "u_2", "abcdefghijklmnopqrstuvwxyz012345"} {
		if err := validateUsername(ok); err != nil {
			t.Errorf("validateUsername(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "1abc", "-x", "a.b", "a b", "alice$", "ALICE", "root", "systemd-network", "abcdefghijklmnopqrstuvwxyz0123456"} {
		if err := validateUsername(bad); err == nil {
			t.Errorf("validateUsername(%q) = nil, want an error", bad)
		}
	}
}

// The control plane stores keys of at most SSH_KEY_MAX_BYTES (8 KiB,
// gpulab_core.contracts.identity), which a Python test holds equal to
// maxKeyLine: a line of exactly that size must validate, one byte more not.
func TestAKeyLineOfExactlyMaxKeyLineValidatesAndOneByteMoreDoesNot(t *testing.T) {
	head := sshKey("ssh-ed25519", 7, "")
	line := head + " " + strings.Repeat("c", maxKeyLine-len(head)-1)
	if len(line) != maxKeyLine {
		t.Fatalf("built %d bytes, want %d", len(line), maxKeyLine)
	}
	if _, err := validateKey(line); err != nil {
		t.Errorf("a line of %d bytes: %v", maxKeyLine, err)
	}
	if _, err := validateKey(line + "c"); err == nil {
		t.Errorf("a line of %d bytes validated", maxKeyLine+1)
	}
}
