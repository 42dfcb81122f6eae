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
	"caddy":      {"80/tcp", "443/tcp", "443/udp"},
	"grpc-front": {"50051/tcp", "50052/tcp"},
}

// trustedNetwork is a network whose members' word about a client's address one service believes:
// anything else on it could name any address it liked.
type trustedNetwork struct {
	name     string
	truster  string   // the service that believes what comes from the network
	variable string   // its setting that must name exactly the network's subnet
	header   string   // what it believes
	proxy    string   // the one member that passes clients on, on this network alone
	members  []string // everything that may join (and must)
}

var trustedNetworks = []trustedNetwork{
	{name: "edge", truster: "gateway", variable: "GPULAB_TRUSTED_PROXIES", header: "X-Forwarded-For",
		proxy: "caddy", members: []string{"caddy", "gateway"}},
	{name: "agents", truster: "pki", variable: "GPULAB_ENROLL_TRUSTED_PROXIES", header: "PROXY protocol header",
		proxy: "grpc-front", members: []string{"grpc-front", "pki", "inventory"}},
}

func checkTrustedNetworks(p *types.Project, fail func(string, ...any)) {
	for _, tn := range trustedNetworks {
		tn.check(p, fail)
	}
}

func (tn trustedNetwork) check(p *types.Project, fail func(string, ...any)) {
	network, ok := p.Networks[tn.name]
	if !ok || network.Ipam.Config == nil || len(network.Ipam.Config) != 1 {
		fail("the %s network must exist with exactly one subnet: %s names it in %s", tn.name, tn.truster, tn.variable)
		return
	}
	subnet := network.Ipam.Config[0].Subnet
	trusted := p.Services[tn.truster].Environment[tn.variable]
	if trusted == nil || *trusted != subnet {
		got := "<unset>"
		if trusted != nil {
			got = *trusted
		}
		fail("%s's %s is %s, want the %s network's subnet %s: only %s names clients", tn.truster, tn.variable, got,
			tn.name, subnet, tn.proxy)
	}
	for _, name := range sortedNames(p.Services) {
		_, on := p.Services[name].Networks[tn.name]
		if on && !slices.Contains(tn.members, name) {
			fail("%s joins the %s network, whose %s %s believes; only %v may", name, tn.name, tn.header, tn.truster, tn.members)
		}
		if slices.Contains(tn.members, name) && !on {
			fail("%s must join the %s network", name, tn.name)
		}
	}
	if proxy, ok := p.Services[tn.proxy]; ok && len(proxy.Networks) != 1 {
		fail("%s must be on the %s network only: it reaches %v and nothing else of ours", tn.proxy, tn.name, tn.members)
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
