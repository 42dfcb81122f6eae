"""Every GPULAB_ variable a pod gets is a setting its program reads, named as that program's
Settings class names it (a typo'd variable would be ignored in silence), and every setting without
a default is given. Listen addresses and ports agree with the ports the pod declares."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from pydantic_settings import BaseSettings

from gpulab_core.cli import migration_settings
from gpulab_core.settings import ENV_PREFIX, CoreSettings

from .manifests import SERVICES, EnvVar, Obj, Workload, environment, workloads

# The listeners each named container port is, as (host setting, port setting).
LISTENERS = {
    "metrics": ("GPULAB_METRICS_HOST", "GPULAB_METRICS_PORT"),
    "http": ("GPULAB_HTTP_HOST", "GPULAB_HTTP_PORT"),
    "enroll": ("GPULAB_ENROLL_HOST", "GPULAB_ENROLL_PORT"),
    "heartbeat": ("GPULAB_HEARTBEAT_HOST", "GPULAB_HEARTBEAT_PORT"),
}
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def settings_class(command: list[str]) -> type[BaseSettings] | None:
    """What `command` reads: a service, its migrate/wait-for-schema step, or the setup step."""
    match command:
        case ["python", "-m", module] if module.removeprefix("gpulab_") in SERVICES:
            return _service_settings(module)
        case ["python", "-m", module, "migrate" | "wait-for-schema"]:
            return migration_settings(_service_settings(module))
        case ["python", "-m", _, "events-stream"]:
            return CoreSettings
    return None


def _service_settings(module: str) -> type[CoreSettings]:
    cls: object = importlib.import_module(f"{module}.config").Settings
    assert isinstance(cls, type), f"{module}.config.Settings is not a class"
    assert issubclass(cls, CoreSettings), f"{module}.config.Settings is not a CoreSettings"
    return cls


def names(cls: type[BaseSettings]) -> set[str]:
    return {ENV_PREFIX + field.upper() for field in cls.model_fields}


def caddy_variables(caddyfile: Path) -> set[str]:
    """The environment variables the Caddyfile reads ({$NAME} or {$NAME:default})."""
    return set(re.findall(r"\{\$([A-Z0-9_]+)", caddyfile.read_text()))


def check_settings(objs: list[Obj], caddyfile: Path) -> list[str]:
    problems = []
    for w in workloads(objs):
        for c in w.containers():
            env = environment(c, objs)
            who = f"{w.name}/{c['name']}"
            problems += _references(who, c)
            if c.get("command", [])[:1] == ["caddy"]:
                known, required = caddy_variables(caddyfile), set()
            else:
                cls = settings_class(c.get("command", []))
                if cls is None:
                    problems.append(f"{who} runs {c.get('command')}, which kubecheck cannot map to a gpulab program")
                    continue
                known = names(cls)
                required = {ENV_PREFIX + f.upper() for f, info in cls.model_fields.items() if info.is_required()}
            for var in sorted(env):
                if var.startswith(ENV_PREFIX) and var not in known:
                    problems.append(f"{who} sets {var}, which it does not read (no such setting)")
            for var in sorted(required - set(env)):
                problems.append(f"{who} does not set {var}, which has no default")
            if w.kind == "Deployment" and c in w.pod["containers"]:
                problems += _listeners(w, c, env)
    return problems


def _references(who: str, c: Obj) -> list[str]:
    """$(VAR) in a value is expanded by Kubernetes only from a variable defined before it."""
    problems, seen = [], set()
    for var in c.get("env", []):
        for ref in _REFERENCE.findall(str(var.get("value", ""))):
            if ref not in seen:
                problems.append(f"{who}: {var['name']} refers to $({ref}), which is not set before it")
        seen.add(var["name"])
    return problems


def _listeners(w: Workload, c: Obj, env: dict[str, EnvVar]) -> list[str]:
    problems = []
    for port in c.get("ports", []):
        listener = LISTENERS.get(port.get("name", ""))
        if listener is None or c.get("command", [])[:1] == ["caddy"]:
            continue
        host, number = (env[v].value if v in env else None for v in listener)
        if host != "0.0.0.0":
            problems.append(
                f"{w.name} listens for `{port['name']}` on {host or 'loopback (the default)'}:"
                f" set {listener[0]}=0.0.0.0"
            )
        if number != str(port["containerPort"]):
            problems.append(
                f"{w.name} declares port {port['name']} as {port['containerPort']} but {listener[1]} is {number}"
            )
    return problems
