package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// grpcFrontPorts: the agent's two gRPC ports, each balanced over one service's replicas. Only pki
// reads a PROXY header (it needs each node's address); inventory's TLS would fail on one.
var grpcFrontPorts = []struct {
	port, backend, target string
	proxyHeader           bool
}{
	{"50051", "pki", "pki:50051", true},
	{"50052", "inventory", "inventory:50052", false},
}

const haproxyCfgInImage = "/usr/local/etc/haproxy/haproxy.cfg"

// haproxySections splits haproxy.cfg into its sections ("frontend enrollment", "backend pki", ...),
// each with its directives, comments dropped.
func haproxySections(text string) map[string][]string {
	sections := map[string][]string{}
	current := ""
	for _, line := range strings.Split(text, "\n") {
		body, _, _ := strings.Cut(line, "#")
		if strings.TrimSpace(body) == "" {
			continue
		}
		if !strings.HasPrefix(body, " ") && !strings.HasPrefix(body, "\t") {
			current = strings.Join(strings.Fields(body), " ")
			sections[current] = nil
			continue
		}
		sections[current] = append(sections[current], strings.Join(strings.Fields(body), " "))
	}
	return sections
}

func checkGRPCFront(p *types.Project, files deployFiles, fail func(string, ...any)) {
	front, ok := p.Services["grpc-front"]
	if !ok {
		fail("service \"grpc-front\" is missing: it publishes the agent's gRPC ports for every replica of pki and inventory")
		return
	}
	mounted := false
	for _, v := range front.Volumes {
		if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == filepath.Clean(files.haproxyCfg) && v.Target == haproxyCfgInImage {
			mounted = true
			if !v.ReadOnly {
				fail("grpc-front mounts %s read-write; mount it :ro", rel(files.root, files.haproxyCfg))
			}
		}
	}
	if !mounted {
		fail("grpc-front does not mount %s at %s", rel(files.root, files.haproxyCfg), haproxyCfgInImage)
	}
	data, err := os.ReadFile(files.haproxyCfg)
	if err != nil {
		fail("cannot read %s: %v", rel(files.root, files.haproxyCfg), err)
		return
	}
	sections := haproxySections(string(data))
	for _, want := range grpcFrontPorts {
		checkFrontend(sections, want.port, want.backend, fail)
		servers := 0
		for _, d := range sections["backend "+want.backend] {
			if !strings.HasPrefix(d, "server ") && !strings.HasPrefix(d, "server-template ") {
				continue
			}
			servers++
			if !strings.Contains(d, " "+want.target+" ") {
				fail("haproxy.cfg: backend %s sends to something else than %s: %s", want.backend, want.target, d)
			}
			sends := strings.Contains(d, "send-proxy")
			if want.proxyHeader && !strings.Contains(d, " send-proxy-v2") {
				fail("haproxy.cfg: backend %s must send-proxy-v2 (pki records each node's address): %s", want.backend, d)
			}
			if !want.proxyHeader && sends {
				fail("haproxy.cfg: backend %s must not send a PROXY header (%s reads TLS from the first byte): %s",
					want.backend, want.backend, d)
			}
			if !strings.Contains(d, " check") {
				fail("haproxy.cfg: backend %s must check its servers (a replica is used once it is ready): %s", want.backend, d)
			}
		}
		if servers == 0 {
			fail("haproxy.cfg: backend %s has no servers", want.backend)
		}
	}
}

func checkFrontend(sections map[string][]string, port, backend string, fail func(string, ...any)) {
	for name, directives := range sections {
		if !strings.HasPrefix(name, "frontend ") {
			continue
		}
		for _, d := range directives {
			if d != "bind :"+port {
				continue
			}
			for _, other := range directives {
				if other == "default_backend "+backend {
					return
				}
			}
			fail("haproxy.cfg: %s binds :%s but does not send it to backend %s", name, port, backend)
			return
		}
	}
	fail("haproxy.cfg: no frontend binds :%s", port)
}
