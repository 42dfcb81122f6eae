// Package version holds the agent's build identity.
//
// Version and Commit are set at link time (see agent/Makefile):
//
//	-ldflags "-X github.com/gpulab/gpulab/agent/internal/version.Version=1.2.0
//	          -X github.com/gpulab/gpulab/agent/internal/version.Commit=abc1234"
//
// They must stay plain string variables with constant initialisers, or the
// linker's -X silently leaves them unset.
package version
