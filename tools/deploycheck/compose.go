package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"
)

// gpulabServices are the long-running Python services; every one but the gateway owns a
// PostgreSQL schema and so has a one-shot `migrate-<name>` job.
var gpulabServices = []string{"identity", "pki", "inventory", "scheduler", "notify", "gateway"}

func hasMigrations(service string) bool { return service != "gateway" }

// requiredSecrets have no safe default: compose.yaml must refuse to load without each of them
// (`${VAR:?message}`), rather than start with an empty password.
var requiredSecrets = []string{
	"GPULAB_POSTGRES_PASSWORD", "GPULAB_CA_PASSPHRASE",
	"GPULAB_POSTGRES_IDENTITY_PASSWORD", "GPULAB_POSTGRES_PKI_PASSWORD", "GPULAB_POSTGRES_INVENTORY_PASSWORD",
	"GPULAB_POSTGRES_SCHEDULER_PASSWORD", "GPULAB_POSTGRES_NOTIFY_PASSWORD",
	"GPULAB_INVITE_SEAL_KEY", "GPULAB_AUDIT_HMAC_KEY",
	// One NATS identity per service and the setup step (docs/adr/0016).
	"GPULAB_NATS_IDENTITY_PASSWORD", "GPULAB_NATS_PKI_PASSWORD", "GPULAB_NATS_INVENTORY_PASSWORD",
	"GPULAB_NATS_SCHEDULER_PASSWORD", "GPULAB_NATS_NOTIFY_PASSWORD", "GPULAB_NATS_GATEWAY_PASSWORD",
	"GPULAB_NATS_SETUP_PASSWORD",
}

type deployFiles struct {
	root, compose, envFile, natsConf, haproxyCfg string
}

func defaultFiles(root string) deployFiles {
	return deployFiles{
		root:       root,
		compose:    filepath.Join(root, "compose.yaml"),
		envFile:    filepath.Join(root, "deploy", ".env.example"),
		natsConf:   filepath.Join(root, "deploy", "nats", "nats.conf"),
		haproxyCfg: filepath.Join(root, "deploy", "haproxy", "haproxy.cfg"),
	}
}

// loadCompose loads the project the way `docker compose config` does (see toProjectOptions in
// docker/compose cmd/compose/compose.go), except that the OS environment is left out so the
// result does not depend on who runs the check. env == nil means: read files.envFile.
func loadCompose(ctx context.Context, files deployFiles, env map[string]string) (*types.Project, error) {
	opts := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(files.root),
		cli.WithResolvedPaths(true),
		cli.WithDefaultProfiles(),
	}
	if env == nil {
		opts = append(opts, cli.WithEnvFiles(files.envFile), cli.WithDotEnv)
	} else {
		list := make([]string, 0, len(env))
		for k, v := range env {
			list = append(list, k+"="+v)
		}
		opts = append(opts, cli.WithEnv(list))
	}
	po, err := cli.NewProjectOptions([]string{files.compose}, opts...)
	if err != nil {
		return nil, err
	}
	return po.LoadProject(ctx)
}

// checkCompose loads compose.yaml and returns the project (nil if it does not load) and every
// problem found.
func checkCompose(ctx context.Context, files deployFiles, caddyVersion string) (*types.Project, []error) {
	project, err := loadCompose(ctx, files, nil)
	if err != nil {
		return nil, []error{fmt.Errorf("docker compose would refuse it: %w", err)}
	}
	var errs []error
	errs = append(errs, checkInvariants(project, files)...)
	errs = append(errs, checkSecretsRequired(ctx, files)...)
	errs = append(errs, checkImagePins(project, caddyVersion)...)
	return project, errs
}

func checkInvariants(p *types.Project, files deployFiles) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	for _, name := range gpulabServices {
		svc, ok := p.Services[name]
		if !ok {
			fail("service %q is missing", name)
			continue
		}
		checkReadyzHealthcheck(name, svc, fail)
		requireDependency(svc, "nats", types.ServiceConditionHealthy, fail)
		if !hasMigrations(name) {
			continue
		}
		requireDependency(svc, "postgres", types.ServiceConditionHealthy, fail)
		job := "migrate-" + name
		requireDependency(svc, job, types.ServiceConditionCompletedSuccessfully, fail)
		checkMigrateJob(p, name, job, svc, fail)
	}

	// A service_healthy dependency on a service without a healthcheck never becomes healthy:
	// `docker compose up` fails at run time, not at load time.
	for _, name := range sortedNames(p.Services) {
		for dep, d := range p.Services[name].DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				continue
			}
			if target, ok := p.Services[dep]; ok && !hasHealthcheck(target) {
				fail("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			}
		}
	}

	// gpulab's images (GPULAB_IMAGE_PREFIX is "gpulab" in .env.example) must be built by some
	// service, or compose tries to pull them from a registry.
	for _, name := range sortedNames(p.Services) {
		svc := p.Services[name]
		if svc.Build != nil || !strings.HasPrefix(svc.Image, "gpulab/") {
			continue
		}
		built := false
		for _, other := range p.Services {
			if other.Image == svc.Image && other.Build != nil {
				built = true
			}
		}
		if !built {
			fail("%s uses image %s, which no service builds: compose would try to pull it", name, svc.Image)
		}
	}

	checkNATSMount(p, files, fail)
	checkPublishedPorts(p, fail)
	checkTrustedNetworks(p, fail)
	checkGRPCFront(p, files, fail)
	checkDatabaseRoles(p, fail)
	return errs
}

func checkReadyzHealthcheck(name string, svc types.ServiceConfig, fail func(string, ...any)) {
	if !hasHealthcheck(svc) {
		fail("%s has no healthcheck (every gpulab service must probe its /readyz)", name)
		return
	}
	port := envValue(svc, "GPULAB_METRICS_PORT")
	if name == "gateway" {
		port = envValue(svc, "GPULAB_HTTP_PORT")
	}
	test := strings.Join(svc.HealthCheck.Test, " ")
	if port == "" {
		fail("%s sets no GPULAB_METRICS_PORT/GPULAB_HTTP_PORT, so its healthcheck port cannot be checked", name)
		return
	}
	if want := ":" + port + "/readyz"; !strings.Contains(test, want) {
		fail("%s healthcheck must request %s (the port the service listens on); it runs: %s", name, want, test)
	}
}

func checkMigrateJob(p *types.Project, name, job string, svc types.ServiceConfig, fail func(string, ...any)) {
	m, ok := p.Services[job]
	if !ok {
		fail("one-shot job %q is missing (migrations run once, before any replica of %s starts)", job, name)
		return
	}
	want := []string{"python", "-m", "gpulab_" + name, "migrate"}
	if !slices.Equal([]string(m.Command), want) {
		fail("%s command is %q, want %q", job, []string(m.Command), want)
	}
	if m.Image != svc.Image {
		fail("%s runs image %s but %s runs %s: migrations must come from the same build", job, m.Image, name, svc.Image)
	}
	if m.Restart != "" && m.Restart != types.RestartPolicyNo {
		fail("%s has restart: %s; a one-shot job must not be restarted (use \"no\")", job, m.Restart)
	}
	if m.GetScale() != 1 {
		fail("%s runs %d replicas; migrations run exactly once", job, m.GetScale())
	}
	requireDependency(m, "postgres", types.ServiceConditionHealthy, fail)
}

func checkNATSMount(p *types.Project, files deployFiles, fail func(string, ...any)) {
	nats, ok := p.Services["nats"]
	if !ok {
		fail("service \"nats\" is missing")
		return
	}
	for _, v := range nats.Volumes {
		if v.Type != types.VolumeTypeBind || filepath.Clean(v.Source) != filepath.Clean(files.natsConf) {
			continue
		}
		if !v.ReadOnly {
			fail("nats mounts %s read-write; mount it :ro", rel(files.root, files.natsConf))
		}
		cmd := []string(nats.Command)
		for i, arg := range cmd {
			if (arg == "--config" || arg == "-c") && i+1 < len(cmd) && cmd[i+1] == v.Target {
				return
			}
		}
		fail("nats mounts the conf at %s but its command %q does not load it (--config %s)", v.Target, cmd, v.Target)
		return
	}
	fail("nats does not mount %s: JetStream would run with the image's defaults (no sync_interval: always)",
		rel(files.root, files.natsConf))
}

// checkSecretsRequired reloads compose.yaml without each secret and expects a refusal that names it.
func checkSecretsRequired(ctx context.Context, files deployFiles) []error {
	env, err := dotenv.GetEnvFromFile(map[string]string{}, []string{files.envFile})
	if err != nil {
		return []error{fmt.Errorf("read %s: %w", files.envFile, err)}
	}
	var errs []error
	for _, secret := range requiredSecrets {
		if _, ok := env[secret]; !ok {
			errs = append(errs, fmt.Errorf("%s does not set %s", rel(files.root, files.envFile), secret))
			continue
		}
		without := make(map[string]string, len(env))
		for k, v := range env {
			if k != secret {
				without[k] = v
			}
		}
		_, err := loadCompose(ctx, files, without)
		switch {
		case err == nil:
			errs = append(errs, fmt.Errorf("compose.yaml loads without %s; require it with ${%s:?message}", secret, secret))
		case !strings.Contains(err.Error(), secret):
			errs = append(errs, fmt.Errorf("without %s compose.yaml fails, but not by naming it: %w", secret, err))
		}
	}
	return errs
}

func requireDependency(svc types.ServiceConfig, dep, condition string, fail func(string, ...any)) {
	d, ok := svc.DependsOn[dep]
	switch {
	case !ok:
		fail("%s must depend on %s (condition: %s)", svc.Name, dep, condition)
	case d.Condition != condition:
		fail("%s depends on %s with condition %s, want %s", svc.Name, dep, d.Condition, condition)
	}
}

func hasHealthcheck(svc types.ServiceConfig) bool {
	hc := svc.HealthCheck
	return hc != nil && !hc.Disable && len(hc.Test) > 0 && hc.Test[0] != "NONE"
}

func envValue(svc types.ServiceConfig, key string) string {
	if v, ok := svc.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

func sortedNames(services types.Services) []string {
	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
