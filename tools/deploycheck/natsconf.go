package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
)

// checkNATSConf parses nats.conf with nats-server's own loader, in the environment the nats
// container gets from compose.yaml, and checks it against what the services are told.
// project may be nil (compose.yaml did not load); the cross-checks are skipped then.
func checkNATSConf(files deployFiles, project *types.Project) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	env, err := natsContainerEnv(files, project)
	if err != nil {
		return []error{err}
	}
	// The conf refers to variables ($GPULAB_NATS_PASSWORD) that nats-server reads from its own
	// environment; give it exactly the container's.
	for k, v := range env {
		if prev, had := os.LookupEnv(k); had {
			defer os.Setenv(k, prev)
		} else {
			defer os.Unsetenv(k)
		}
		os.Setenv(k, v)
	}

	opts := &server.Options{}
	if err := opts.ProcessConfigFile(files.natsConf); err != nil {
		// nats-server starts despite warnings (an unknown jetstream key, for one), but a
		// warning here is a setting that silently does not do what its line says.
		type configErr interface {
			Errors() []error
			Warnings() []error
		}
		if ce, ok := err.(configErr); ok {
			for _, e := range append(ce.Errors(), ce.Warnings()...) {
				fail("%v", e)
			}
		} else {
			fail("%v", err)
		}
		return errs
	}

	if !opts.JetStream {
		fail("JetStream is not enabled (a jetstream {} block is required)")
	}
	if !opts.SyncAlways {
		fail("jetstream sync_interval must be `always`: an acknowledged event must survive a crash of nats-server or its host")
	}
	if opts.StoreDir == "" {
		fail("jetstream store_dir is not set")
	}
	if opts.HTTPPort <= 0 {
		fail("http_port (monitoring) is not set; the compose healthcheck uses its /healthz")
	}
	if project == nil {
		return errs
	}

	nats, ok := project.Services["nats"]
	if !ok {
		return errs
	}
	if opts.StoreDir != "" && !onNamedVolume(nats, opts.StoreDir) {
		fail("jetstream store_dir %s is not on a named volume of the nats service: events would not survive a container restart", opts.StoreDir)
	}
	if hasHealthcheck(nats) {
		want := ":" + strconv.Itoa(opts.HTTPPort) + "/healthz"
		if test := strings.Join(nats.HealthCheck.Test, " "); !strings.Contains(test, want) {
			fail("nats healthcheck should request %s (http_port in nats.conf); it runs: %s", want, test)
		}
	}

	// Every service must reach NATS at the port, as its own user (docs/adr/0016), with the password
	// the server has for that user; and that user must have permissions (never the whole bus).
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	for _, name := range gpulabServices {
		svc, ok := project.Services[name]
		if !ok {
			continue
		}
		raw := envValue(svc, "GPULAB_NATS_URL")
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "nats" {
			fail("%s: GPULAB_NATS_URL %q is not a nats:// URL", name, raw)
			continue
		}
		if u.Port() != strconv.Itoa(opts.Port) {
			fail("%s: GPULAB_NATS_URL port %s, but nats.conf listens on %d", name, u.Port(), opts.Port)
		}
		if u.User != nil {
			fail("%s: GPULAB_NATS_URL carries credentials; use GPULAB_NATS_USER and GPULAB_NATS_PASSWORD", name)
		}
		user := envValue(svc, "GPULAB_NATS_USER")
		if user != name {
			fail("%s: GPULAB_NATS_USER is %q; each service connects as its own NATS user, %q", name, user, name)
			continue
		}
		known, ok := users[user]
		if !ok {
			fail("%s: nats.conf has no user %q", name, user)
			continue
		}
		if known.Password != envValue(svc, "GPULAB_NATS_PASSWORD") {
			fail("%s: GPULAB_NATS_PASSWORD does not match nats.conf's password for user %q", name, user)
		}
		if known.Permissions == nil || known.Permissions.Publish == nil || known.Permissions.Subscribe == nil {
			fail("%s: nats.conf gives user %q no publish and subscribe permissions: it could use the whole bus", name, user)
		}
	}
	return errs
}

// natsContainerEnv is the nats service's environment after compose interpolation or, when
// compose.yaml did not load, the .env.example values.
func natsContainerEnv(files deployFiles, project *types.Project) (map[string]string, error) {
	env := map[string]string{}
	if project != nil {
		if nats, ok := project.Services["nats"]; ok {
			for k, v := range nats.Environment {
				if v != nil {
					env[k] = *v
				}
			}
			return env, nil
		}
	}
	fromFile, err := dotenv.GetEnvFromFile(map[string]string{}, []string{files.envFile})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", files.envFile, err)
	}
	return fromFile, nil
}

func onNamedVolume(svc types.ServiceConfig, dir string) bool {
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeVolume && (dir == v.Target || strings.HasPrefix(dir, strings.TrimSuffix(v.Target, "/")+"/")) {
			return true
		}
	}
	return false
}
