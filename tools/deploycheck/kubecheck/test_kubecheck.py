"""Each Kubernetes check is shown to fail on a broken copy of the real manifests, as
deploycheck_test.go does for compose.yaml. Run by `make -C tools/deploycheck check`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kubecheck.__main__ import check

REPO = Path(__file__).resolve().parents[3]
DEPLOYCHECK = Path(os.environ.get("DEPLOYCHECK", REPO / "tools" / "deploycheck" / "bin" / "deploycheck"))
# The oldest of the versions `make check` validates against: the broken copies break gpulab's rules
# or one schema, so one version shows each (and each extra version costs every case a second pass).
VERSIONS = os.environ.get("KUBERNETES_VERSIONS", "1.33 1.37").split()[:1]
PRODUCTION = Path("deploy/kubernetes/overlays/production")

Edit = tuple[str, str, str]  # (file under deploy/kubernetes, text that occurs once, its replacement)


def problems_of(tmp_path: Path, *edits: Edit) -> list[str]:
    """The problems kubecheck reports for the production overlay of an edited copy of the repository's
    manifests (and Caddyfile). An edit whose text is not there exactly once fails the test instead."""
    shutil.copytree(
        REPO / "deploy" / "kubernetes", tmp_path / "deploy" / "kubernetes", ignore=shutil.ignore_patterns("secrets")
    )
    shutil.copy(REPO / "Caddyfile", tmp_path / "Caddyfile")
    for file, old, new in edits:
        path = tmp_path / "deploy" / "kubernetes" / file
        text = path.read_text()
        assert text.count(old) == 1, f"edit of {file}: {old!r} occurs {text.count(old)} times, want exactly 1"
        path.write_text(text.replace(old, new))
    problems, _ = check(DEPLOYCHECK, tmp_path, PRODUCTION, VERSIONS)
    return problems


def test_the_repository_manifests_pass_every_check(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == []


def test_an_operators_secrets_are_never_read(tmp_path: Path) -> None:
    real = tmp_path / "deploy" / "kubernetes" / "overlays" / "production" / "secrets"
    shutil.copytree(REPO / PRODUCTION / "secrets.example", real)
    (real / "audit-hmac-key.env").write_text("key=a-real-key-that-must-never-reach-a-log\n")
    shutil.copytree(REPO / "deploy", tmp_path / "deploy", dirs_exist_ok=True, ignore=shutil.ignore_patterns("secrets"))
    shutil.copy(REPO / "Caddyfile", tmp_path / "Caddyfile")
    problems, _ = check(DEPLOYCHECK, tmp_path, PRODUCTION, VERSIONS)
    assert problems == [], "the example's placeholders were rendered, not secrets/"


IDENTITY_WAIT_HOST = (
    "command: [python, -m, gpulab_identity, wait-for-schema]\n          env:\n"
    "            - {name: DATABASE_HOST, valueFrom: {configMapKeyRef: {name: gpulab-database, key: host}}}\n"
)
SCHEDULER_MAIN_URL = (
    "gpulab-nats-scheduler, key: password}}}\n"
    "            - {name: DATABASE_HOST, valueFrom: {configMapKeyRef: {name: gpulab-database, key: host}}}\n"
    "            - {name: DATABASE_PASSWORD, valueFrom: {secretKeyRef: {name: gpulab-db-scheduler, key: password}}}\n"
    '            - {name: GPULAB_DATABASE_URL, value: "postgresql://gpulab_scheduler:'
)
MIGRATE_IDENTITY_URL = (
    '            - {name: GPULAB_DATABASE_URL, value: "postgresql://gpulab_identity:$(DATABASE_PASSWORD)@$(DATABASE_HOST)/gpulab"}\n'
    "          resources: {requests: {cpu: 100m"
)
AUDIT_KEY = (
    "            - {name: GPULAB_AUDIT_HMAC_KEY, valueFrom: {secretKeyRef: {name: gpulab-audit-hmac-key, key: key}}}\n"
)

SMTP_PASSWORD = "gpulab-smtp, key: password}}}\n"
GATEWAY_RULES = "gateway, app.kubernetes.io/component: service}}\n  policyTypes: [Ingress]\n  ingress:\n"

BROKEN: list[tuple[str, list[Edit], str]] = [
    # Schemas
    (
        "a typo'd field",
        [("base/identity.yaml", "revisionHistoryLimit: 5", "revisionHistoryLimt: 5")],
        "Additional properties are not allowed ('revisionHistoryLimt' was unexpected)",
    ),
    (
        "a custom resource nobody listed",
        [("components/cloudnative-pg/cluster.yaml", "kind: Cluster", "kind: Pooler")],
        "no schema for postgresql.cnpg.io/v1 Pooler",
    ),
    # Pods
    (
        "a container without limits",
        [
            (
                "base/scheduler.yaml",
                ', limits: {cpu: "1", memory: 512Mi}}\n          startupProbe',
                "}\n          startupProbe",
            )
        ],
        "scheduler/scheduler has no limits for cpu, memory",
    ),
    (
        "readiness asks the liveness path",
        [("base/notify.yaml", "path: /readyz", "path: /healthz")],
        "notify readinessProbe asks /healthz, want /readyz",
    ),
    (
        "liveness on the gRPC port",
        [
            (
                "base/pki.yaml",
                "livenessProbe: {httpGet: {path: /healthz, port: metrics}",
                "livenessProbe: {httpGet: {path: /healthz, port: enroll}",
            )
        ],
        "pki livenessProbe asks port enroll, want its `metrics` port (9102)",
    ),
    (
        "a pod that may run as root",
        [("base/identity.yaml", "runAsNonRoot: true", "runAsNonRoot: false")],
        "identity must run as non-root uid/gid 10001",
    ),
    (
        "a capability added back",
        [("base/web.yaml", "capabilities: {drop: [ALL]}", "capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}")],
        "web/web must drop ALL capabilities and add none",
    ),
    (
        "service links on",
        [("base/scheduler.yaml", "enableServiceLinks: false", "enableServiceLinks: true")],
        "scheduler gets service links",
    ),
    (
        "no topology spread",
        [
            (
                "base/notify.yaml",
                "      topologySpreadConstraints:\n",
                "      topologySpreadConstraints: []\n      x-spread:\n",
            )
        ],
        "notify has no topologySpreadConstraints",
    ),
    # Scaling
    (
        "no autoscaler for the scheduler",
        [("base/scheduler.yaml", "kind: Deployment, name: scheduler}", "kind: Deployment, name: scheduler-old}")],
        "no HorizontalPodAutoscaler scales the scheduler Deployment",
    ),
    (
        "replicas fighting the autoscaler",
        [("base/gateway.yaml", "  revisionHistoryLimit: 5\n", "  replicas: 3\n  revisionHistoryLimit: 5\n")],
        "Deployment gateway sets replicas but its HorizontalPodAutoscaler owns the count",
    ),
    (
        "a disruption budget that selects nothing",
        [
            (
                "base/web.yaml",
                "  maxUnavailable: 1\n  selector:\n    matchLabels: {app.kubernetes.io/name: web,",
                "  maxUnavailable: 1\n  selector:\n    matchLabels: {app.kubernetes.io/name: webb,",
            )
        ],
        "no PodDisruptionBudget covers the web Deployment's pods",
    ),
    # Migrations
    (
        "a migrate Job that serves instead",
        [("base/migrate.yaml", "command: [python, -m, gpulab_pki, migrate]", "command: [python, -m, gpulab_pki]")],
        "migrate-pki runs ['python', '-m', 'gpulab_pki'], want ['python', '-m', 'gpulab_pki', 'migrate']",
    ),
    (
        "a service that does not wait for its schema",
        [
            (
                "base/inventory.yaml",
                "command: [python, -m, gpulab_inventory, wait-for-schema]",
                "command: [python, -m, gpulab_inventory, version]",
            )
        ],
        "inventory starts without waiting for its schema",
    ),
    (
        "a migrate Job from another build",
        [("base/migrate.yaml", "image: gpulab/pki:dev", "image: gpulab/identity:dev")],
        "migrate-pki runs registry.example.org/gpulab/identity:0.1.0 but its service runs",
    ),
    (
        "a migrate Job given a service secret",
        [
            (
                "base/migrate.yaml",
                MIGRATE_IDENTITY_URL,
                MIGRATE_IDENTITY_URL.replace("          resources", AUDIT_KEY + "          resources"),
            )
        ],
        "migrate-identity is given Secret gpulab-audit-hmac-key; only ['identity'] may have it",
    ),
    (
        "a service connecting as another's role",
        [
            (
                "base/scheduler.yaml",
                SCHEDULER_MAIN_URL,
                SCHEDULER_MAIN_URL.replace("//gpulab_scheduler:", "//gpulab_identity:"),
            )
        ],
        "scheduler connects as gpulab_identity, want gpulab_scheduler",
    ),
    (
        "the gateway given a database",
        [
            (
                "base/gateway.yaml",
                "- {name: GPULAB_HTTP_PORT",
                '- {name: GPULAB_DATABASE_URL, value: "postgresql://x@db/g"}\n            - {name: GPULAB_HTTP_PORT',
            )
        ],
        "gateway has GPULAB_DATABASE_URL: the gateway holds no database credentials",
    ),
    (
        "the stream made with one replica",
        [("base/events-stream.yaml", 'GPULAB_EVENTS_REPLICAS, value: "3"', 'GPULAB_EVENTS_REPLICAS, value: "1"')],
        "GPULAB_EVENTS_REPLICAS=3",
    ),
    # Settings
    (
        "a typo'd setting",
        [("overlays/production/settings/notify.env", "GPULAB_SMTP_HOST=", "GPULAB_SMTP_HOTS=")],
        "notify/notify sets GPULAB_SMTP_HOTS, which it does not read",
    ),
    (
        "a required secret setting left out",
        [("base/identity.yaml", AUDIT_KEY, "")],
        "identity/identity does not set GPULAB_AUDIT_HMAC_KEY, which has no default",
    ),
    (
        "health servers on loopback",
        [("base/kustomization.yaml", "      - GPULAB_METRICS_HOST=0.0.0.0\n", "")],
        "identity listens for `metrics` on loopback",
    ),
    (
        "a metrics port the pod does not declare",
        [("base/identity.yaml", 'GPULAB_METRICS_PORT, value: "9101"', 'GPULAB_METRICS_PORT, value: "9111"')],
        "identity declares port metrics as 9101 but GPULAB_METRICS_PORT is 9111",
    ),
    (
        "a $(VAR) defined after its use",
        [("base/identity.yaml", IDENTITY_WAIT_HOST, IDENTITY_WAIT_HOST.rsplit("            - ", 1)[0])],
        "identity/wait-for-schema: GPULAB_DATABASE_URL refers to $(DATABASE_HOST), which is not set before it",
    ),
    # Exposure
    (
        "the gateway on a load balancer",
        [("base/gateway.yaml", "type: ClusterIP", "type: LoadBalancer")],
        "Service gateway is LoadBalancer",
    ),
    (
        "an agent port whose source address is lost",
        [("base/pki.yaml", "externalTrafficPolicy: Local", "externalTrafficPolicy: Cluster")],
        "Service pki-enroll must expose exactly 50051 -> enroll, with externalTrafficPolicy: Local",
    ),
    (
        "the API routed to the web app",
        [
            (
                "base/ingress.yaml",
                "{path: /api, pathType: Prefix, backend: {service: {name: gateway",
                "{path: /api, pathType: Prefix, backend: {service: {name: web",
            )
        ],
        "the Ingress routes",
    ),
    # Network policies
    (
        "no default deny",
        [
            (
                "base/networkpolicies.yaml",
                "name: default-deny\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]",
                "name: default-deny\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]",
            )
        ],
        "no default-deny NetworkPolicy",
    ),
    (
        "the gateway open to every pod",
        [
            (
                "base/networkpolicies.yaml",
                GATEWAY_RULES,
                GATEWAY_RULES + "    - ports: [{protocol: TCP, port: http}]\n",
            )
        ],
        "gateway:http is reachable from ['anywhere'",
    ),
    (
        "metrics open to every namespace",
        [
            (
                "base/networkpolicies.yaml",
                '"true"}}\n      ports: [{protocol: TCP, port: metrics}]',
                '"true"}}\n    - ports: [{protocol: TCP, port: metrics}]',
            )
        ],
        "identity:metrics is reachable from ['anywhere'",
    ),
    (
        "NATS open to every pod",
        [
            (
                "base/networkpolicies.yaml",
                'nats-client: "true"}}\n      ports: [{protocol: TCP, port: 4222}]\n    - from:',
                'nats-client: "true"}}\n    - ports: [{protocol: TCP, port: 4222}]\n    - from:',
            )
        ],
        "NATS :4222 is reachable from ['anywhere'",
    ),
    (
        "the web app made a database client",
        [
            (
                "base/web.yaml",
                "component: web}\n    spec:",
                'component: web, gpulab.io/database-client: "true"}\n    spec:',
            )
        ],
        "the database clients are",
    ),
    (
        "every pod may open PostgreSQL",
        [
            (
                "components/cloudnative-pg/networkpolicies.yaml",
                'name: database-clients\nspec:\n  podSelector: {matchLabels: {gpulab.io/database-client: "true"}}',
                "name: database-clients\nspec:\n  podSelector: {}",
            )
        ],
        "gateway may open :5432 (PostgreSQL)",
    ),
    (
        "PostgreSQL open to the namespace",
        [
            (
                "components/cloudnative-pg/networkpolicies.yaml",
                'database-client: "true"}}\n        - podSelector: {matchLabels: {cnpg.io/cluster: gpulab-db}}',
                'database-client: "true"}}\n        - namespaceSelector: {}',
            )
        ],
        "PostgreSQL :5432 is reachable from ['namespaces()', ",
    ),
    # Secrets and images
    (
        "the audit key given to notify",
        [("base/notify.yaml", SMTP_PASSWORD, SMTP_PASSWORD + AUDIT_KEY)],
        "notify is given Secret gpulab-audit-hmac-key; only ['identity'] may have it",
    ),
    (
        "a whole Secret as environment",
        [
            (
                "base/pki.yaml",
                "{name: gpulab-pki}\n",
                "{name: gpulab-pki}\n            - secretRef: {name: gpulab-ca-passphrase}\n",
            )
        ],
        "pki/pki takes all of Secret gpulab-ca-passphrase (envFrom)",
    ),
    (
        "a real-looking secret in the example",
        [
            (
                "overlays/production/secrets.example/ca-passphrase.env",
                "change-me-ca-passphrase",
                "correct-horse-battery-staple",
            )
        ],
        "the example value of gpulab-ca-passphrase/passphrase is not a change-me placeholder",
    ),
    (
        "an image that is not pinned",
        [
            (
                "overlays/production/kustomization.yaml",
                "registry.example.org/gpulab/web, newTag: 0.1.0",
                "registry.example.org/gpulab/web, newTag: dev",
            )
        ],
        "web/web runs registry.example.org/gpulab/web:dev: pin a released version",
    ),
]


@pytest.mark.parametrize(("edits", "want"), [pytest.param(e, w, id=n) for n, e, w in BROKEN])
def test_each_broken_copy_is_refused(tmp_path: Path, edits: list[Edit], want: str) -> None:
    problems = problems_of(tmp_path, *edits)
    assert any(want in p for p in problems), f"no problem mentions {want!r}:\n" + "\n".join(problems)
