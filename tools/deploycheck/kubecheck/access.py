"""Who reaches what: Services, the Ingress, NetworkPolicies, and which pods get which Secret."""

from __future__ import annotations

import base64

from .manifests import DATABASE_SERVICES, SERVICES, Obj, environment, find, kinds, name, selects, workloads

INGRESS_CONTROLLER = "namespaces(gpulab.io/ingress-controller=true)"
MONITORING = "namespaces(gpulab.io/monitoring=true)"
ANYWHERE = "anywhere"
# Every port of every gpulab pod, and the only sources that may reach it.
REACHABLE_FROM = {
    ("gateway", "http"): {INGRESS_CONTROLLER},
    ("web", "http"): {INGRESS_CONTROLLER},
    ("pki", "enroll"): {ANYWHERE},
    ("inventory", "heartbeat"): {ANYWHERE},
}
# The agents' gRPC ports: LoadBalancer Services, the only ones (TLS end to end, never proxied).
LOAD_BALANCED = {"pki-enroll": ("pki", 50051, "enroll"), "inventory-heartbeat": ("inventory", 50052, "heartbeat")}
# The Ingress's routes: the Caddyfile's (gateway's paths, the rest to the web app).
ROUTES = {"/api": "gateway", "/install-agent.sh": "gateway", "/downloads": "gateway", "/": "web"}

NATS_SERVER = {"app.kubernetes.io/name": "nats", "app.kubernetes.io/component": "nats"}
NATS_CLIENT = "gpulab.io/nats-client"
DATABASE_SERVER = {"cnpg.io/cluster": "gpulab-db"}
DATABASE_CLIENT = "gpulab.io/database-client"

# Which workloads may have each Secret: only those that use it (docs/adr/0007, 0009, 0016).
SECRET_USERS: dict[str, set[str]] = {
    "gpulab-audit-hmac-key": {"identity"},
    "gpulab-invite-seal-key": {"identity", "notify"},
    "gpulab-ca-passphrase": {"pki"},
    "gpulab-smtp": {"notify"},
    "gpulab-db-owner": {f"migrate-{s}" for s in DATABASE_SERVICES},
    **{f"gpulab-db-{s}": {s, f"migrate-{s}"} for s in DATABASE_SERVICES},
    **{f"gpulab-nats-{s}": {s} for s in SERVICES},
    "gpulab-nats-setup": {"events-stream"},
}


def check_services(objs: list[Obj]) -> list[str]:
    problems = []
    pods = {w.name: w for w in workloads(objs) if w.kind == "Deployment"}
    services = kinds(objs, "Service")
    for svc in services:
        spec = svc["spec"]
        kind = spec.get("type", "ClusterIP")
        if kind == "NodePort" or (kind == "LoadBalancer" and name(svc) not in LOAD_BALANCED):
            problems.append(
                f"Service {name(svc)} is {kind}: only the agents' gRPC ports are exposed outside the cluster"
            )
    for lb, (owner, port, target) in LOAD_BALANCED.items():
        balancer = find(objs, "Service", lb)
        if balancer is None or balancer["spec"].get("type") != "LoadBalancer":
            problems.append(f"{owner}'s gRPC port {port} needs the LoadBalancer Service {lb}")
            continue
        ports = [(p["port"], p.get("targetPort")) for p in balancer["spec"]["ports"]]
        if ports != [(port, target)] or balancer["spec"].get("externalTrafficPolicy") != "Local":
            problems.append(f"Service {lb} must expose exactly {port} -> {target}, with externalTrafficPolicy: Local")
    for w in pods.values():
        for port in w.main.get("ports", []):
            if not any(
                selects({"matchLabels": s["spec"].get("selector", {})}, w.labels)
                and any(p.get("targetPort") in (port.get("name"), port["containerPort"]) for p in s["spec"]["ports"])
                for s in services
            ):
                problems.append(f"no Service exposes {w.name}'s port {port.get('name')} ({port['containerPort']})")
    return problems


def check_ingress(objs: list[Obj]) -> list[str]:
    routes: dict[str, str] = {}
    for ing in kinds(objs, "Ingress"):
        for rule in ing["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                routes[path["path"]] = path["backend"]["service"]["name"]
    if routes != ROUTES:
        return [f"the Ingress routes {routes}, want {ROUTES} (the Caddyfile's: the gateway's paths, the rest to web)"]
    return []


def _peer(entry: Obj) -> str:
    def sel(kind: str, s: Obj) -> str:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.get("matchLabels", {}).items()))
        return f"{kind}({labels})" if labels or not s.get("matchExpressions") else f"{kind}(expressions)"

    parts = []
    if "namespaceSelector" in entry:
        parts.append(sel("namespaces", entry["namespaceSelector"]))
    if "podSelector" in entry:
        parts.append(sel("pods", entry["podSelector"]))
    if "ipBlock" in entry:
        parts.append(f"ip({entry['ipBlock']['cidr']})")
    return "/".join(parts)


def _pods(labels: dict[str, str]) -> str:
    return "pods(" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + ")"


def _port_matches(rule: Obj, port_name: str | None, number: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") in (port_name, number) for p in ports)


def peers(objs: list[Obj], labels: dict[str, str], direction: str, port_name: str | None, number: int) -> set[str]:
    """Every peer the NetworkPolicies let reach (Ingress) or be reached by (Egress) a pod with
    `labels` on that port; `anywhere` for a rule without peers."""
    field, key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    found: set[str] = set()
    for pol in kinds(objs, "NetworkPolicy"):
        spec = pol["spec"]
        if direction not in spec.get("policyTypes", ["Ingress"]) or not selects(spec["podSelector"], labels):
            continue
        for rule in spec.get(field, []):
            if _port_matches(rule, port_name, number):
                found |= {_peer(e) for e in rule[key]} if rule.get(key) else {ANYWHERE}
    return found


def check_network(objs: list[Obj]) -> list[str]:
    problems = []
    if not any(
        p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in kinds(objs, "NetworkPolicy")
    ):
        problems.append("no default-deny NetworkPolicy (every pod, Ingress and Egress, no rule)")
    all_pods = workloads(objs)
    for w in all_pods:
        for port in w.main.get("ports", []) if w.kind == "Deployment" else []:
            want = MONITORING if port.get("name") == "metrics" else REACHABLE_FROM.get((w.name, port.get("name")))
            got = peers(objs, w.labels, "Ingress", port.get("name"), port["containerPort"])
            wanted = want if isinstance(want, set) else {want} if want else set()
            if got != wanted:
                problems.append(
                    f"{w.name}:{port.get('name')} is reachable from {sorted(got) or 'nobody'}, want {sorted(wanted)}"
                )
    nats_users = {w.name for w in all_pods if w.labels.get(NATS_CLIENT) == "true"}
    if nats_users != set(SERVICES) | {"events-stream"}:
        problems.append(f"the NATS clients are {sorted(nats_users)}: only the gpulab services and events-stream may be")
    db_users = {w.name for w in all_pods if w.labels.get(DATABASE_CLIENT) == "true"}
    want_db = set(DATABASE_SERVICES) | {f"migrate-{s}" for s in DATABASE_SERVICES}
    if db_users != want_db:
        problems.append(
            f"the database clients are {sorted(db_users)}, want {sorted(want_db)} (never the gateway or web)"
        )
    server = [
        (NATS_SERVER, 4222, "NATS", f"pods({NATS_CLIENT}=true)"),
        (DATABASE_SERVER, 5432, "PostgreSQL", f"pods({DATABASE_CLIENT}=true)"),
    ]
    for labels, port, what, clients in server:
        got = peers(objs, labels, "Ingress", None, port)
        strangers = got - {
            clients,
            _pods(labels),
            "namespaces(kubernetes.io/metadata.name=cnpg-system)/pods(app.kubernetes.io/name=cloudnative-pg)",
        }
        if clients not in got or strangers:
            problems.append(
                f"{what} :{port} is reachable from {sorted(got) or 'nobody'}; only {clients} may"
                " (NetworkPolicies must cover it)"
            )
        for w in all_pods:
            label = NATS_CLIENT if port == 4222 else DATABASE_CLIENT
            out = peers(objs, w.labels, "Egress", None, port)
            if w.labels.get(label) != "true" and out:
                problems.append(f"{w.name} may open :{port} ({what}) to {sorted(out)}")
            if w.labels.get(label) == "true" and _pods(labels) not in out:
                problems.append(f"{w.name} is a {what} client but may not reach {what} :{port}")
    return problems


def check_secrets(objs: list[Obj], overlay: bool) -> list[str]:
    """Each Secret reaches only the workloads that use it; each reference names a key the Secret has;
    the example values are placeholders the services refuse."""
    problems = []
    secrets = {name(s): s for s in kinds(objs, "Secret")}
    if secrets and not overlay:
        problems.append(f"the base holds Secrets {sorted(secrets)}: secrets come from an overlay's secrets/ only")
    users: dict[str, set[str]] = {}
    for w in workloads(objs):
        for c in w.containers():
            for var in environment(c, objs).values():
                if var.secret is None:
                    continue
                secret, key = var.secret
                users.setdefault(secret, set()).add(w.name)
                if key == "*":
                    problems.append(
                        f"{w.name}/{c['name']} takes all of Secret {secret} (envFrom): name each key it needs"
                    )
                elif overlay and key not in (secrets.get(secret, {}).get("data") or {}):
                    problems.append(f"{w.name}/{c['name']} reads key {key} of Secret {secret}, which has no such key")
    for secret, who in sorted(users.items()):
        allowed = SECRET_USERS.get(secret)
        if allowed is None:
            problems.append(f"Secret {secret} (used by {sorted(who)}) is not in kubecheck's list of who may have it")
        elif who - allowed:
            problems.append(
                f"{', '.join(sorted(who - allowed))} is given Secret {secret}; only {sorted(allowed)} may have it"
            )
    for secret, obj in secrets.items() if overlay else []:
        if secret not in users:
            problems.append(f"Secret {secret} is made but no pod uses it")
        for key, value in (obj.get("data") or {}).items():
            text = base64.b64decode(value).decode()
            if key != "username" and text and not text.startswith("change-me"):
                problems.append(
                    f"the example value of {secret}/{key} is not a change-me placeholder (which the services refuse)"
                )
    return problems
