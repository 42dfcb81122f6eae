"""Broken copies of deploy/kubernetes for test_kubecheck.py, continued (broken.py): who may reach
what, which pod gets which Secret, which image runs."""

from __future__ import annotations

from .broken import AUDIT_KEY, GATEWAY_RULES, SMTP_PASSWORD, Edit

BROKEN_ACCESS: list[tuple[str, list[Edit], str]] = [
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
