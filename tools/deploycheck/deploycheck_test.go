package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testCaddyVersion = "v2.11.9"

// edit replaces old with new in one of the copied files; old must occur exactly once, so a test
// whose anchor text left compose.yaml fails loudly instead of passing without breaking anything.
type edit struct{ file, old, new string }

// copyRepoFiles copies the real deployment files into a temp root and applies edits.
func copyRepoFiles(t *testing.T, edits ...edit) deployFiles {
	t.Helper()
	src := defaultFiles(filepath.Join("..", ".."))
	dst := defaultFiles(t.TempDir())
	users := func(f deployFiles) string { return filepath.Join(filepath.Dir(f.natsConf), "users.conf") }
	for _, pair := range [][2]string{{src.compose, dst.compose}, {src.envFile, dst.envFile}, {src.natsConf, dst.natsConf}, {users(src), users(dst)}, {src.haproxyCfg, dst.haproxyCfg}} {
		data, err := os.ReadFile(pair[0])
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		for _, e := range edits {
			if filepath.Base(pair[0]) != e.file {
				continue
			}
			if n := strings.Count(text, e.old); n != 1 {
				t.Fatalf("edit of %s: %q occurs %d times, want exactly 1", e.file, e.old, n)
			}
			text = strings.Replace(text, e.old, e.new, 1)
		}
		if err := os.MkdirAll(filepath.Dir(pair[1]), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pair[1], []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func runChecks(files deployFiles) []error {
	project, errs := checkCompose(context.Background(), files, testCaddyVersion)
	return append(errs, checkNATSConf(files, project)...)
}

func TestRepositoryFilesPassEveryCheck(t *testing.T) {
	for _, err := range runChecks(copyRepoFiles(t)) {
		t.Error(err)
	}
}

func TestEachBrokenFileIsRefused(t *testing.T) {
	cases := []struct {
		name  string
		edits []edit
		want  string // a substring of one of the reported problems
	}{
		{
			name:  "typo in a compose key",
			edits: []edit{{"compose.yaml", "  stop_grace_period: 30s\n", "  stop_grace_periode: 30s\n"}},
			want:  "stop_grace_periode",
		},
		{
			name:  "service without healthcheck",
			edits: []edit{{"compose.yaml", "    healthcheck:\n      <<: *readyz\n      test: [CMD, python, -c, \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:9105/readyz', timeout=3)\"]\n", ""}},
			want:  "notify has no healthcheck",
		},
		{
			name:  "healthcheck on the wrong port",
			edits: []edit{{"compose.yaml", "http://127.0.0.1:9105/readyz", "http://127.0.0.1:9999/readyz"}},
			want:  "notify healthcheck must request :9105/readyz",
		},
		{
			name:  "service does not wait for its migration",
			edits: []edit{{"compose.yaml", "migrate-scheduler: {condition: service_completed_successfully}", "migrate-scheduler: {condition: service_started}"}},
			want:  "scheduler depends on migrate-scheduler with condition service_started, want service_completed_successfully",
		},
		{
			name:  "migration job missing",
			edits: []edit{{"compose.yaml", "      migrate-pki: {condition: service_completed_successfully}\n", ""}},
			want:  "pki must depend on migrate-pki",
		},
		{
			name:  "nats conf not mounted",
			edits: []edit{{"compose.yaml", "      - ./deploy/nats/nats.conf:/etc/nats/nats.conf:ro\n", ""}},
			want:  "nats does not mount deploy/nats/nats.conf",
		},
		{
			name:  "secret given a default",
			edits: []edit{{"compose.yaml", "${GPULAB_CA_PASSPHRASE:?set GPULAB_CA_PASSPHRASE in .env (see deploy/.env.example)}", "${GPULAB_CA_PASSPHRASE:-}"}},
			want:  "compose.yaml loads without GPULAB_CA_PASSPHRASE",
		},
		{
			name:  "required variable missing from .env.example",
			edits: []edit{{".env.example", "GPULAB_POSTGRES_PASSWORD=change-me-postgres-password\n", ""}},
			want:  "GPULAB_POSTGRES_PASSWORD",
		},
		{
			name:  "database published to the host",
			edits: []edit{{"compose.yaml", "    shm_size: 256mb\n", "    shm_size: 256mb\n    ports: [\"5432:5432\"]\n"}},
			want:  "postgres publishes 5432/tcp",
		},
		{
			name:  "caddy image drifts from the validating caddy",
			edits: []edit{{"compose.yaml", "image: caddy:2.11-alpine", "image: caddy:2.10-alpine"}},
			want:  "caddy image \"caddy:2.10-alpine\" is 2.10",
		},
		{
			name:  "JetStream without sync always",
			edits: []edit{{"nats.conf", "  sync_interval: always\n", "  sync_interval: \"2m\"\n"}},
			want:  "sync_interval must be `always`",
		},
		{
			name:  "typo in nats.conf",
			edits: []edit{{"nats.conf", "  max_memory_store: 256MB\n", "  max_memory_stor: 256MB\n"}},
			want:  "max_memory_stor",
		},
		{
			name:  "gateway trusts more than the edge network",
			edits: []edit{{"compose.yaml", "GPULAB_TRUSTED_PROXIES: ${GPULAB_EDGE_SUBNET:-172.30.250.0/27}", "GPULAB_TRUSTED_PROXIES: 172.16.0.0/12"}},
			want:  "gateway's GPULAB_TRUSTED_PROXIES is 172.16.0.0/12, want the edge network's subnet 172.30.250.0/27",
		},
		{
			name:  "another service joins the edge network",
			edits: []edit{{"compose.yaml", "    command: [python, -m, gpulab_notify]\n", "    command: [python, -m, gpulab_notify]\n    networks: [default, edge]\n"}},
			want:  "notify joins the edge network",
		},
		{
			name:  "pki trusts more than the agents network",
			edits: []edit{{"compose.yaml", "GPULAB_ENROLL_TRUSTED_PROXIES: ${GPULAB_AGENTS_SUBNET:-172.30.251.0/26}", "GPULAB_ENROLL_TRUSTED_PROXIES: 172.16.0.0/12"}},
			want:  "pki's GPULAB_ENROLL_TRUSTED_PROXIES is 172.16.0.0/12, want the agents network's subnet 172.30.251.0/26",
		},
		{
			name:  "another service joins the agents network",
			edits: []edit{{"compose.yaml", "    command: [python, -m, gpulab_notify]\n", "    command: [python, -m, gpulab_notify]\n    networks: [default, agents]\n"}},
			want:  "notify joins the agents network, whose PROXY protocol header pki believes",
		},
		{
			name:  "pki published past grpc-front",
			edits: []edit{{"compose.yaml", "    networks: [default, agents]\n    deploy:\n      replicas: ${GPULAB_PKI_REPLICAS:-1}\n", "    networks: [default, agents]\n    ports: [\"50051:50051\"]\n    deploy:\n      replicas: ${GPULAB_PKI_REPLICAS:-1}\n"}},
			want:  "pki publishes 50051/tcp",
		},
		{
			name:  "inventory sent a PROXY header it cannot read",
			edits: []edit{{"haproxy.cfg", "resolvers docker init-addr none\n", "resolvers docker init-addr none send-proxy-v2\n"}},
			want:  "backend inventory must not send a PROXY header",
		},
		{
			name:  "pki not told the node's address",
			edits: []edit{{"haproxy.cfg", " send-proxy-v2\n", "\n"}},
			want:  "backend pki must send-proxy-v2",
		},
		{
			name:  "the heartbeat port sent to pki",
			edits: []edit{{"haproxy.cfg", "    bind :50052\n    default_backend inventory\n", "    bind :50052\n    default_backend pki\n"}},
			want:  "binds :50052 but does not send it to backend inventory",
		},
		{
			name:  "haproxy.cfg mounted read-write",
			edits: []edit{{"compose.yaml", "/usr/local/etc/haproxy/haproxy.cfg:ro", "/usr/local/etc/haproxy/haproxy.cfg"}},
			want:  "grpc-front mounts deploy/haproxy/haproxy.cfg read-write",
		},
		{
			name:  "gateway given a database URL",
			edits: []edit{{"compose.yaml", "      # No database settings: it faces the internet", "      GPULAB_DATABASE_URL: *db-identity\n      # No database settings: it faces the internet"}},
			want:  "gateway has GPULAB_DATABASE_URL",
		},
		{
			name:  "a service connects as another service's role",
			edits: []edit{{"compose.yaml", "      GPULAB_DATABASE_URL: *db-scheduler\n      GPULAB_NATS_USER: scheduler\n", "      GPULAB_DATABASE_URL: *db-identity\n      GPULAB_NATS_USER: scheduler\n"}},
			want:  "scheduler's GPULAB_DATABASE_URL must connect as gpulab_scheduler",
		},
		{
			name:  "the audit key given to another service",
			edits: []edit{{"compose.yaml", "      GPULAB_METRICS_PORT: \"9105\"\n", "      GPULAB_METRICS_PORT: \"9105\"\n      GPULAB_AUDIT_HMAC_KEY: x\n"}},
			want:  "notify is given GPULAB_AUDIT_HMAC_KEY",
		},
		{
			name:  "a service connects as another service's NATS user",
			edits: []edit{{"compose.yaml", "GPULAB_NATS_USER: notify\n", "GPULAB_NATS_USER: identity\n"}},
			want:  "each service connects as its own NATS user",
		},
		{
			name:  "a service and nats disagree on its password",
			edits: []edit{{"compose.yaml", "      GPULAB_NATS_USER: gateway\n      GPULAB_NATS_PASSWORD: ${GPULAB_NATS_GATEWAY_PASSWORD", "      GPULAB_NATS_USER: gateway\n      GPULAB_NATS_PASSWORD: ${GPULAB_NATS_SETUP_PASSWORD"}},
			want:  "GPULAB_NATS_PASSWORD does not match nats.conf's password for user \"gateway\"",
		},
		{
			name: "a service's NATS user may use the whole bus",
			edits: []edit{
				{"users.conf", "user: \"notify\"", "user: \"notify-old\""},
				{"users.conf", "  users = [\n", "  users = [\n    { user: \"notify\", password: $GPULAB_NATS_NOTIFY_PASSWORD }\n"},
			},
			want: "user \"notify\" no publish and subscribe permissions",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := runChecks(copyRepoFiles(t, tc.edits...))
			if len(errs) == 0 {
				t.Fatal("all checks passed on a broken file")
			}
			joined := errors.Join(errs...).Error()
			if !strings.Contains(joined, tc.want) {
				t.Fatalf("problems do not mention %q:\n%s", tc.want, joined)
			}
		})
	}
}

func TestMinorOf(t *testing.T) {
	for in, want := range map[string]string{"v2.11.9": "2.11", "2.11-alpine": "2.11", "2.15.3": "2.15", "18-alpine": "", "latest": ""} {
		if got := minorOf(in); got != want {
			t.Errorf("minorOf(%q) = %q, want %q", in, got, want)
		}
	}
}
