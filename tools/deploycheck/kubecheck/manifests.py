"""The rendered objects, and what the checks ask of them."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

# The Python services, and those of them that own a PostgreSQL schema (all but the gateway).
SERVICES = ("identity", "pki", "inventory", "scheduler", "notify", "gateway")
DATABASE_SERVICES = ("identity", "pki", "inventory", "scheduler", "notify")
# The uid and gid deploy/docker/python.Dockerfile creates (web.Dockerfile runs Caddy as the same).
IMAGE_UID = 10001


def render(deploycheck: Path, root: Path, kustomization: Path) -> list[Obj]:
    """`deploycheck -kustomize`: the objects `kubectl apply -k` would send, with each overlay's
    secrets.example/ standing in for its secrets/ (an operator's real secrets are never read)."""
    done = subprocess.run(
        [str(deploycheck), "-root", str(root), "-kustomize", str(kustomization), "-example-secrets"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RenderError(done.stderr.strip() or f"deploycheck exited {done.returncode}")
    # libyaml's parser where PyYAML has it (its wheels do): ten times the pure-Python one.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(done.stdout, Loader=loader) if doc]


class RenderError(Exception):
    pass


def name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def kinds(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o.get("kind") == kind]


def find(objs: list[Obj], kind: str, obj_name: str) -> Obj | None:
    return next((o for o in kinds(objs, kind) if name(o) == obj_name), None)


@dataclass
class Workload:
    """A Deployment or Job: its pod template and where it comes from."""

    kind: str
    name: str
    obj: Obj

    @property
    def template(self) -> Obj:
        return dict(self.obj["spec"]["template"])

    @property
    def pod(self) -> Obj:
        return dict(self.template["spec"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.template["metadata"].get("labels", {}))

    def containers(self, init: bool = True) -> Iterator[Obj]:
        if init:
            yield from self.pod.get("initContainers", [])
        yield from self.pod.get("containers", [])

    @property
    def main(self) -> Obj:
        return dict(self.pod["containers"][0])


def workloads(objs: list[Obj]) -> list[Workload]:
    return [Workload(o["kind"], name(o), o) for o in objs if o.get("kind") in ("Deployment", "Job")]


def selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A label selector (matchLabels only: the manifests use no expressions) against labels."""
    if selector is None:
        return False
    if selector.get("matchExpressions"):
        raise ValueError("matchExpressions are not supported by these checks; use matchLabels")
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


@dataclass
class EnvVar:
    name: str
    value: str | None = None  # a literal value ($(VAR) references unexpanded)
    secret: tuple[str, str] | None = None  # (Secret, key)
    config_map: tuple[str, str] | None = None  # (ConfigMap, key)


def environment(container: Obj, objs: list[Obj]) -> dict[str, EnvVar]:
    """Every variable the container gets, from envFrom ConfigMaps (as rendered) and env, in the order
    Kubernetes applies them (env wins over envFrom)."""
    found: dict[str, EnvVar] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            cm = find(objs, "ConfigMap", source["configMapRef"]["name"]) or {}
            for key, value in (cm.get("data") or {}).items():
                found[key] = EnvVar(key, value=str(value), config_map=(source["configMapRef"]["name"], key))
        if "secretRef" in source:
            found["envFrom secretRef " + source["secretRef"]["name"]] = EnvVar(
                "*", secret=(source["secretRef"]["name"], "*")
            )
    for var in container.get("env", []):
        ref = var.get("valueFrom", {})
        if "secretKeyRef" in ref:
            found[var["name"]] = EnvVar(var["name"], secret=(ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]))
        elif "configMapKeyRef" in ref:
            cm_ref = ref["configMapKeyRef"]
            data = (find(objs, "ConfigMap", cm_ref["name"]) or {}).get("data") or {}
            found[var["name"]] = EnvVar(
                var["name"], value=data.get(cm_ref["key"]), config_map=(cm_ref["name"], cm_ref["key"])
            )
        else:
            found[var["name"]] = EnvVar(var["name"], value=str(var.get("value", "")))
    return found


_URL_USER = re.compile(r"^postgres(?:ql)?(?:\+asyncpg)?://([^:@/]+)[:@]")


def url_user(value: str | None) -> str | None:
    """The user of a postgresql:// URL (its password may be a $(VAR) reference)."""
    m = _URL_USER.match(value or "")
    return m.group(1) if m else None


def image_repository(image: str) -> tuple[str, str]:
    """("registry/path/gpulab/identity", "0.1.0" or "sha256:..." or "") of an image reference."""
    if "@" in image:
        repo, digest = image.split("@", 1)
        return repo, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, ""


def service_of(workload: Workload) -> str:
    """The gpulab service a workload runs the image of: `migrate-pki` -> pki; the setup step runs
    identity's image (as compose's does); the web app is `web`."""
    if workload.name.startswith("migrate-"):
        return workload.name.removeprefix("migrate-")
    if workload.name == "events-stream":
        return "identity"
    return workload.name
