"""What every gpulab pod must be: bounded, probed on the right port, unprivileged, spread, scaled
where it may be, never all evicted at once, and started only on a migrated schema."""

from __future__ import annotations

from .manifests import (
    DATABASE_SERVICES,
    IMAGE_UID,
    Obj,
    Workload,
    environment,
    find,
    image_repository,
    kinds,
    name,
    selects,
    service_of,
    url_user,
    workloads,
)

# The Deployments the HorizontalPodAutoscaler scales (the rest run a fixed number for availability).
AUTOSCALED = ("gateway", "inventory", "scheduler")
# The port the probes ask: each service's health server (GPULAB_METRICS_PORT); the gateway's and the
# web app's on the port their traffic comes in on, so that "ready" means that port answers.
PROBE_PORT = {"gateway": "http", "web": "http"}


def check_pods(objs: list[Obj]) -> list[str]:
    problems: list[str] = []
    for w in workloads(objs):
        problems += _resources(w) + _security(w)
        if w.kind == "Deployment":
            problems += _probes(w) + _spread(w)
    return problems


def _resources(w: Workload) -> list[str]:
    problems = []
    for c in w.containers():
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in res.get(kind, {})]
            if missing:
                problems.append(f"{w.name}/{c['name']} has no {kind} for {', '.join(missing)}")
    return problems


def _security(w: Workload) -> list[str]:
    problems = []
    pod = w.pod
    ctx = pod.get("securityContext", {})
    if ctx.get("runAsNonRoot") is not True or ctx.get("runAsUser") != IMAGE_UID or ctx.get("runAsGroup") != IMAGE_UID:
        problems.append(
            f"{w.name} must run as non-root uid/gid {IMAGE_UID}"
            " (pod securityContext: runAsNonRoot, runAsUser, runAsGroup)"
        )
    if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{w.name} must use the RuntimeDefault seccomp profile")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append(f"{w.name} mounts a service account token; no gpulab pod talks to the Kubernetes API")
    if pod.get("enableServiceLinks") is not False:
        problems.append(f"{w.name} gets service links: a Service named gpulab-... would inject GPULAB_* variables")
    for c in w.containers():
        sc = c.get("securityContext", {})
        caps = sc.get("capabilities", {})
        if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True:
            problems.append(
                f"{w.name}/{c['name']} must set allowPrivilegeEscalation: false and readOnlyRootFilesystem: true"
            )
        if caps.get("drop") != ["ALL"] or caps.get("add"):
            problems.append(f"{w.name}/{c['name']} must drop ALL capabilities and add none")
        if "privileged" in sc or "runAsUser" in sc:
            problems.append(f"{w.name}/{c['name']} overrides the pod's user or privileges")
    return problems


def _probes(w: Workload) -> list[str]:
    c = w.main
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    want = PROBE_PORT.get(w.name, "metrics")
    problems = []
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet")
        if get is None:
            problems.append(f"{w.name} has no {probe} (HTTP GET {path})")
            continue
        if get.get("path") != path:
            problems.append(f"{w.name} {probe} asks {get.get('path')}, want {path}")
        port = get.get("port")
        if port not in (want, ports.get(want)):
            problems.append(f"{w.name} {probe} asks port {port}, want its `{want}` port ({ports.get(want)})")
    return problems


def _spread(w: Workload) -> list[str]:
    spread = w.pod.get("topologySpreadConstraints", [])
    if not any(selects(t.get("labelSelector"), w.labels) for t in spread):
        return [f"{w.name} has no topologySpreadConstraints that select its own pods"]
    return []


def check_scaling(objs: list[Obj]) -> list[str]:
    problems = []
    deployments = {name(d): d for d in kinds(objs, "Deployment")}
    scaled = {}
    for hpa in kinds(objs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        if hpa["apiVersion"] != "autoscaling/v2" or ref.get("kind") != "Deployment":
            problems.append(f"HorizontalPodAutoscaler {name(hpa)} must be autoscaling/v2 on a Deployment")
        scaled[ref.get("name")] = hpa
        if hpa["spec"].get("minReplicas", 1) < 2:
            problems.append(
                f"HorizontalPodAutoscaler {name(hpa)} may scale to one replica;"
                " minReplicas 2 keeps one during a rollout"
            )
    for target in AUTOSCALED:
        if target not in scaled:
            problems.append(f"no HorizontalPodAutoscaler scales the {target} Deployment")
    for target in scaled:
        if target in deployments and "replicas" in deployments[target]["spec"]:
            problems.append(
                f"Deployment {target} sets replicas but its HorizontalPodAutoscaler owns the count"
                " (apply would reset it)"
            )
    pdbs = kinds(objs, "PodDisruptionBudget")
    for d in deployments.values():
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        if not any(selects(p["spec"].get("selector"), labels) for p in pdbs):
            problems.append(f"no PodDisruptionBudget covers the {name(d)} Deployment's pods")
    return problems


def check_migrations(objs: list[Obj]) -> list[str]:
    """compose's start order, without compose: migrate-<service> Jobs as the owner, and each replica
    waiting (as the service's own role) until its schema is migrated."""
    problems = []
    for svc in DATABASE_SERVICES:
        deployment = find(objs, "Deployment", svc)
        job = find(objs, "Job", f"migrate-{svc}")
        if deployment is None or job is None:
            problems.append(f"{svc}: its Deployment and its Job migrate-{svc} must both exist")
            continue
        d, j = Workload("Deployment", svc, deployment), Workload("Job", f"migrate-{svc}", job)
        image = d.main["image"]
        problems += _one_shot(
            j,
            objs,
            ["python", "-m", f"gpulab_{svc}", "migrate"],
            image,
            {"GPULAB_MIGRATION_DATABASE_URL": "gpulab", "GPULAB_DATABASE_URL": f"gpulab_{svc}"},
        )
        waits = [
            c
            for c in d.pod.get("initContainers", [])
            if c.get("command") == ["python", "-m", f"gpulab_{svc}", "wait-for-schema"]
        ]
        if not waits:
            problems.append(
                f"{svc} starts without waiting for its schema:"
                f" no initContainer runs `python -m gpulab_{svc} wait-for-schema`"
            )
        for c in waits:
            problems += _database_env(f"{svc}/{c['name']}", c, objs, image, {"GPULAB_DATABASE_URL": f"gpulab_{svc}"})
        user = url_user(_value(d.main, objs, "GPULAB_DATABASE_URL"))
        if user != f"gpulab_{svc}":
            problems.append(
                f"{svc} connects as {user}, want gpulab_{svc} (the role that may use the {svc} schema only)"
            )
    gateway = find(objs, "Deployment", "gateway")
    if gateway is not None:
        for c in Workload("Deployment", "gateway", gateway).containers():
            for var in ("GPULAB_DATABASE_URL", "GPULAB_MIGRATION_DATABASE_URL"):
                if var in environment(c, objs):
                    problems.append(f"gateway has {var}: the gateway holds no database credentials")
    stream = find(objs, "Job", "events-stream")
    if stream is None:
        problems.append("the Job events-stream (the setup step that makes GPULAB_EVENTS) is missing")
    else:
        c = Workload("Job", "events-stream", stream).main
        if c.get("command", [])[-1:] != ["events-stream"] or _value(c, objs, "GPULAB_NATS_USER") != "setup":
            problems.append("events-stream must run `python -m gpulab_<service> events-stream` as the NATS user setup")
        if _value(c, objs, "GPULAB_EVENTS_REPLICAS") != "3":
            problems.append(
                "events-stream must make the stream with GPULAB_EVENTS_REPLICAS=3 (a three-node NATS cluster)"
            )
    return problems


def _one_shot(j: Workload, objs: list[Obj], command: list[str], image: str, users: dict[str, str]) -> list[str]:
    problems = []
    c = j.main
    if c.get("command") != command:
        problems.append(f"{j.name} runs {c.get('command')}, want {command}")
    if j.pod.get("restartPolicy") not in ("Never", "OnFailure") or j.obj["spec"].get("parallelism", 1) != 1:
        problems.append(f"{j.name} must run one pod at a time")
    return problems + _database_env(j.name, c, objs, image, users)


def _database_env(who: str, c: Obj, objs: list[Obj], image: str, users: dict[str, str]) -> list[str]:
    problems = []
    if c["image"] != image:
        problems.append(
            f"{who} runs {c['image']} but its service runs {image}: migrations must come from the same build"
        )
    env = environment(c, objs)
    gpulab = sorted(k for k in env if k.startswith("GPULAB_") or k.startswith("envFrom"))
    if gpulab != sorted(users):
        problems.append(f"{who} gets {gpulab}; it reads only {sorted(users)} and must be given nothing else")
    for var, user in users.items():
        if var in env and url_user(env[var].value) != user:
            problems.append(f"{who}'s {var} connects as {url_user(env[var].value)}, want {user}")
    return problems


def _value(c: Obj, objs: list[Obj], var: str) -> str | None:
    found = environment(c, objs).get(var)
    return found.value if found else None


def check_images(objs: list[Obj], pinned: bool) -> list[str]:
    """Each pod runs its own service's image (a migrate Job the same build as its service); with
    `pinned` (an overlay), a version, never `dev` or `latest`."""
    problems = []
    for w in workloads(objs):
        for c in w.containers():
            repo, tag = image_repository(c["image"])
            if not repo.endswith(f"gpulab/{service_of(w)}"):
                problems.append(f"{w.name}/{c['name']} runs {c['image']}, not gpulab/{service_of(w)}")
            if pinned and tag in ("", "dev", "latest"):
                problems.append(f"{w.name}/{c['name']} runs {c['image']}: pin a released version (or a digest)")
    return problems
