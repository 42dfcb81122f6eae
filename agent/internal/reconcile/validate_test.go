package reconcile

import "testing"

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
