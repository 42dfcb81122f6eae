package version

import (
	"runtime"
	"testing"
)

func TestStringNamesVersionCommitAndGoVersion(t *testing.T) {
	oldVersion, oldCommit := Version, Commit
	t.Cleanup(func() { Version, Commit = oldVersion, oldCommit })
	Version, Commit = "1.2.3", "abc1234"

	want := "gpulab-agent 1.2.3 (abc1234, " + runtime.Version() + ")"
	if got := String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
