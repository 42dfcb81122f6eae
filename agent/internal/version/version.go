package version

import (
	"fmt"
	"runtime"
)

var (
	// Version is the release, from `git describe --tags --always --dirty`.
	// The agent reports it in every heartbeat.
	Version = "0.0.0-dev"
	// Commit is the source revision the binary was built from.
	Commit = "unknown"
)

// String is the one-line identity printed by `gpulab-agent version`:
// "gpulab-agent <version> (<commit>, <go version>)".
func String() string {
	return fmt.Sprintf("gpulab-agent %s (%s, %s)", Version, Commit, runtime.Version())
}
