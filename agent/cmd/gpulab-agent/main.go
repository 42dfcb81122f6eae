// Command gpulab-agent runs on each GPU node: it enrolls with the control
// plane, reports the node's hardware in heartbeats, and enforces the
// assignments it receives. This file only maps the command line onto
// internal packages.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/gpulab/gpulab/agent/internal/version"
)

// Exit statuses: 2 for a command line that cannot be understood, the
// convention of Go's flag package and of most Unix tools.
const (
	exitOK    = 0
	exitUsage = 2
)

const usage = `usage: gpulab-agent <command>

commands:
  version    print the agent's version, commit and Go version
  help       print this help
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "gpulab-agent: %s takes no arguments, got %q\n\n%s", cmd, rest, usage)
		return exitUsage
	}
	switch cmd {
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version.String())
		return exitOK
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "gpulab-agent: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}
