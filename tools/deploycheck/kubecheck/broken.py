"""Broken copies of deploy/kubernetes for test_kubecheck.py: each a name, the edits that break the
repository's files, and a phrase the problem kubecheck reports must contain."""

from __future__ import annotations

Edit = tuple[str, str, str]  # (file under deploy/kubernetes, text that occurs once, its replacement)

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
SMTP_LOGIN = (
    "            - {name: GPULAB_SMTP_USERNAME, valueFrom: {secretKeyRef: {name: gpulab-smtp, key: username}}}\n"
    "            - {name: GPULAB_SMTP_PASSWORD, valueFrom: {secretKeyRef: {name: gpulab-smtp, key: password}}}\n"
)
MIGRATE_NOTIFY = 'name: notify, app.kubernetes.io/component: migrate, gpulab.io/one-shot: "true"}\nspec:\n'
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
]

# Rules whose breakage is less likely, each shown to be caught all the same.
MORE: list[tuple[str, list[Edit], str]] = [
    (
        "an autoscaler down to one pod",
        [("base/gateway.yaml", "minReplicas: 2", "minReplicas: 1")],
        "HorizontalPodAutoscaler gateway may scale to one replica",
    ),
    (
        "a port no Service exposes",
        [("base/identity.yaml", "port: 9101, targetPort: metrics}", "port: 9101, targetPort: metric}")],
        "no Service exposes identity's port metrics (9101)",
    ),
    (
        "a key the Secret does not have",
        [("base/identity.yaml", "{name: gpulab-audit-hmac-key, key: key}", "{name: gpulab-audit-hmac-key, key: hmac}")],
        "reads key hmac of Secret gpulab-audit-hmac-key, which has no such key",
    ),
    ("a Secret nobody uses", [("base/notify.yaml", SMTP_LOGIN, "")], "Secret gpulab-smtp is made but no pod uses it"),
    (
        "a service account token",
        [("base/pki.yaml", "automountServiceAccountToken: false", "automountServiceAccountToken: true")],
        "pki mounts a service account token",
    ),
    (
        "a writable root filesystem",
        [("base/events-stream.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")],
        "events-stream/events-stream must set allowPrivilegeEscalation: false and readOnlyRootFilesystem: true",
    ),
    (
        "no seccomp profile",
        [("base/web.yaml", "seccompProfile: {type: RuntimeDefault}", "seccompProfile: {type: Unconfined}")],
        "web must use the RuntimeDefault seccomp profile",
    ),
    (
        "a container back to root",
        [("base/gateway.yaml", "readOnlyRootFilesystem: true,", "readOnlyRootFilesystem: true, runAsUser: 0,")],
        "gateway/gateway overrides the pod's user or privileges",
    ),
    (
        "NATS clients cut off",
        [
            (
                "base/networkpolicies.yaml",
                'name: nats-clients\nspec:\n  podSelector: {matchLabels: {gpulab.io/nats-client: "true"}}',
                'name: nats-clients\nspec:\n  podSelector: {matchLabels: {gpulab.io/nats-client: "no"}}',
            )
        ],
        "identity is a NATS client but may not reach NATS :4222",
    ),
    (
        "the gateway off the bus",
        [("base/gateway.yaml", 'gpulab.io/nats-client: "true"', 'gpulab.io/nats-client: "false"')],
        "the NATS clients are",
    ),
    (
        "a program kubecheck does not know",
        [("base/notify.yaml", "command: [python, -m, gpulab_notify]", "command: [python, -m, gpulab_notfy]")],
        "notify/notify runs ['python', '-m', 'gpulab_notfy'], which kubecheck cannot map to a gpulab program",
    ),
    (
        "the stream made as a service",
        [
            (
                "base/events-stream.yaml",
                "{name: GPULAB_NATS_USER, value: setup}",
                "{name: GPULAB_NATS_USER, value: identity}",
            )
        ],
        "events-stream must run `python -m gpulab_<service> events-stream` as the NATS user setup",
    ),
    (
        "a migrate Job in parallel",
        [("base/migrate.yaml", MIGRATE_NOTIFY, MIGRATE_NOTIFY + "  parallelism: 2\n")],
        "migrate-notify must run one pod at a time",
    ),
]
