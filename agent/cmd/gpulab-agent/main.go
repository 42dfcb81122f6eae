// Command gpulab-agent runs on each GPU node: it enrolls with the control
// plane, reports the node's hardware in heartbeats, and enforces the
// assignments it receives. This file only maps the command line onto
// internal packages.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/gpulab/gpulab/agent/internal/discover"
	"github.com/gpulab/gpulab/agent/internal/enroll"
	"github.com/gpulab/gpulab/agent/internal/hostexec"
	"github.com/gpulab/gpulab/agent/internal/reconcile"
	"github.com/gpulab/gpulab/agent/internal/runloop"
	"github.com/gpulab/gpulab/agent/internal/version"
)

// Exit statuses: 2 for a command line that cannot be understood, the
// convention of Go's flag package and of most Unix tools.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `usage: gpulab-agent <command>

commands:
  version    print the agent's version, commit and Go version
  enroll     enroll this node with the control plane (gpulab-agent enroll --help)
  discover   print this node's hardware as the heartbeat reports it (JSON)
  run        run the agent as a service: heartbeats and assignments (gpulab-agent run --help)
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
	if cmd == "enroll" {
		return enroll.Command(context.Background(), rest, os.LookupEnv, os.Stdin, stdout, stderr)
	}
	if cmd == "run" {
		log := runloop.NewLogger(stderr)
		cfg, err := reconcileConfig(os.LookupEnv, log)
		if err != nil {
			fmt.Fprintf(stderr, "gpulab-agent run: %v\n", err)
			return exitUsage
		}
		reconciler, err := reconcile.New(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "gpulab-agent run: %v\n", err)
			return exitUsage
		}
		return runloop.Command(context.Background(), rest, runloop.Deps{
			Version:    version.Version,
			Hardware:   discover.New(hostexec.Exec{}),
			Reconciler: reconciler,
			LookupEnv:  os.LookupEnv,
			Log:        log,
		}, stdout, stderr)
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "gpulab-agent: %s takes no arguments, got %q\n\n%s", cmd, rest, usage)
		return exitUsage
	}
	switch cmd {
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, version.String())
		return exitOK
	case "discover":
		return printHardware(stdout, stderr)
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "gpulab-agent: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// printHardware is `gpulab-agent discover`, for an operator checking a node:
// the Hardware the heartbeat would report, as JSON with the field names of
// the REST Node.hardware object, and the problems the heartbeat would report
// with it on stderr. Problems do not fail the command, as they do not fail
// the heartbeat.
func printHardware(stdout, stderr io.Writer) int {
	hardware, problems := discover.New(hostexec.Exec{}).Collect(context.Background())
	for _, p := range problems {
		fmt.Fprintf(stderr, "gpulab-agent discover: %s\n", p)
	}
	out, err := protojson.MarshalOptions{Multiline: true, UseProtoNames: true, EmitUnpopulated: true}.Marshal(hardware)
	if err != nil {
		fmt.Fprintf(stderr, "gpulab-agent discover: encode hardware as JSON: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return exitOK
}
