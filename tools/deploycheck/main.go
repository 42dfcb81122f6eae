// Command deploycheck validates gpulab's single-host deployment files without a Docker engine.
//
// It loads compose.yaml with compose-go, the library `docker compose` itself uses (the same
// schema validation, interpolation and consistency checks as `docker compose config`), with
// deploy/.env.example as the only environment, then asserts gpulab's own invariants; it parses
// deploy/nats/nats.conf with nats-server's own config loader. One line per check on stdout;
// exit status 1 when any check fails. The Caddyfile is checked by the Makefile with caddy itself.
//
// With -kustomize DIR it only renders that kustomization (as `kubectl apply -k DIR` would) and
// prints the YAML stream; the Kubernetes checks (kubecheck.py) read it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func main() {
	root := flag.String("root", "../..", "repository root (holds compose.yaml)")
	caddyVersion := flag.String("caddy-version", "", "version of the caddy that validates the Caddyfile (v2.x.y); the compose image must be the same minor")
	kustomize := flag.String("kustomize", "", "only render this kustomization directory and print the YAML")
	exampleSecrets := flag.Bool("example-secrets", false, "with -kustomize: render with each overlay's secrets.example/ as its secrets/ (never reads secrets/)")
	flag.Parse()

	abs, err := filepath.Abs(*root)
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploycheck: %v\n", err)
		os.Exit(2)
	}
	if *kustomize != "" {
		dir, err := filepath.Abs(*kustomize)
		if err != nil {
			fmt.Fprintf(os.Stderr, "deploycheck: %v\n", err)
			os.Exit(2)
		}
		out, err := renderKustomization(filepath.Join(abs, kubernetesTree), dir, *exampleSecrets)
		if err != nil {
			fmt.Fprintf(os.Stderr, "deploycheck: %v\n", err)
			os.Exit(1)
		}
		os.Stdout.Write(out)
		return
	}
	files := defaultFiles(abs)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	failed := false
	report := func(name, okDetail string, errs []error) {
		if len(errs) == 0 {
			fmt.Printf("ok    %-22s %s\n", name, okDetail)
			return
		}
		failed = true
		fmt.Printf("FAIL  %-22s %d problem(s)\n", name, len(errs))
		for _, e := range errs {
			fmt.Printf("      - %v\n", e)
		}
	}

	project, composeErrs := checkCompose(ctx, files, *caddyVersion)
	services := 0
	if project != nil {
		services = len(project.Services)
	}
	report("compose.yaml", fmt.Sprintf("compose-go %s: %d services load with %s; gpulab invariants hold",
		moduleVersion("github.com/compose-spec/compose-go/v2"), services, rel(abs, files.envFile)), composeErrs)

	natsErrs := checkNATSConf(files, project)
	report("deploy/nats/nats.conf", fmt.Sprintf("nats-server %s parses it: JetStream file store, sync always",
		moduleVersion("github.com/nats-io/nats-server/v2")), natsErrs)

	if failed {
		os.Exit(1)
	}
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}
