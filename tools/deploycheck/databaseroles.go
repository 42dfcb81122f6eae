package main

import (
	"net/url"

	"github.com/compose-spec/compose-go/v2/types"
)

// databaseSettings are what a service connects to PostgreSQL with. The gateway must have none:
// it faces the internet and holds no database credentials (it refuses to start with one).
var databaseSettings = []string{"GPULAB_DATABASE_URL", "GPULAB_MIGRATION_DATABASE_URL"}

// secretOwners names the only services given each of these secrets (docs/adr/0007, 0009).
var secretOwners = map[string][]string{
	"GPULAB_INVITE_SEAL_KEY": {"identity", "notify"},
	"GPULAB_AUDIT_HMAC_KEY":  {"identity"},
}

// checkDatabaseRoles: each service and its migrate job connect as the service's own role
// (gpulab_<name>, which may use that service's schema only), the gateway as none, and the
// secrets above reach their owners only.
func checkDatabaseRoles(p *types.Project, fail func(string, ...any)) {
	for _, name := range gpulabServices {
		svc, ok := p.Services[name]
		if !ok {
			continue
		}
		if !hasMigrations(name) {
			for _, key := range databaseSettings {
				if _, set := svc.Environment[key]; set {
					fail("%s has %s: the gateway holds no database credentials", name, key)
				}
			}
			continue
		}
		for _, who := range []string{name, "migrate-" + name} {
			s, ok := p.Services[who]
			if !ok {
				continue
			}
			u, err := url.Parse(envValue(s, "GPULAB_DATABASE_URL"))
			if err != nil || u.User == nil || u.User.Username() != "gpulab_"+name {
				fail("%s's GPULAB_DATABASE_URL must connect as gpulab_%s, the role that may use the %s schema only", who, name, name)
			}
		}
	}
	for _, name := range sortedNames(p.Services) {
		for secret, owners := range secretOwners {
			if _, set := p.Services[name].Environment[secret]; set && !contains(owners, name) {
				fail("%s is given %s; only %v may have it", name, secret, owners)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
