package main

import (
	"fmt"
	"slices"
	"sort"

	"github.com/compose-spec/compose-go/v2/types"
)

// publishedPorts is everything the host may expose: the TLS edge and the agent's two gRPC ports.
// PostgreSQL, NATS, its monitoring port and the services' metrics ports stay on the compose network.
var publishedPorts = map[string][]string{
	"caddy":     {"80/tcp", "443/tcp", "443/udp"},
	"pki":       {"50051/tcp"},
	"inventory": {"50052/tcp"},
}

var edgeMembers = []string{"caddy", "gateway"}

func checkEdgeNetwork(p *types.Project, fail func(string, ...any)) {
	edge, ok := p.Networks["edge"]
	if !ok || edge.Ipam.Config == nil || len(edge.Ipam.Config) != 1 {
		fail("the edge network must exist with exactly one subnet: the gateway names it in GPULAB_TRUSTED_PROXIES")
		return
	}
	subnet := edge.Ipam.Config[0].Subnet
	gateway := p.Services["gateway"]
	trusted := gateway.Environment["GPULAB_TRUSTED_PROXIES"]
	if trusted == nil || *trusted != subnet {
		got := "<unset>"
		if trusted != nil {
			got = *trusted
		}
		fail("gateway's GPULAB_TRUSTED_PROXIES is %s, want the edge network's subnet %s: only Caddy names clients", got, subnet)
	}
	for _, name := range sortedNames(p.Services) {
		_, on := p.Services[name].Networks["edge"]
		if on && !slices.Contains(edgeMembers, name) {
			fail("%s joins the edge network, whose X-Forwarded-For the gateway believes; only %v may", name, edgeMembers)
		}
		if slices.Contains(edgeMembers, name) && !on {
			fail("%s must join the edge network", name)
		}
	}
	if caddy, ok := p.Services["caddy"]; ok && len(caddy.Networks) != 1 {
		fail("caddy must be on the edge network only: it reaches the gateway and nothing else of ours")
	}
}

func checkPublishedPorts(p *types.Project, fail func(string, ...any)) {
	for _, name := range sortedNames(p.Services) {
		svc := p.Services[name]
		var got []string
		for _, port := range svc.Ports {
			if port.Published == "" {
				continue
			}
			got = append(got, fmt.Sprintf("%s/%s", port.Published, port.Protocol))
		}
		allowed := publishedPorts[name]
		for _, g := range got {
			if !slices.Contains(allowed, g) {
				fail("%s publishes %s to the host; only %v may be published (internal ports stay on the compose network)",
					name, g, publishedPortList())
			}
		}
		for _, a := range allowed {
			if !slices.Contains(got, a) {
				fail("%s must publish %s", name, a)
			}
		}
		if len(got) > 0 && svc.GetScale() > 1 {
			fail("%s publishes a fixed host port and so cannot run %d replicas on one host", name, svc.GetScale())
		}
	}
}

func publishedPortList() []string {
	var all []string
	for svc, ports := range publishedPorts {
		for _, p := range ports {
			all = append(all, svc+" "+p)
		}
	}
	sort.Strings(all)
	return all
}
