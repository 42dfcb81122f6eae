"""Every rendered object against the Kubernetes schemas that kubernetes-validate bundles, strictly
(an unknown field is an error). Custom resources have no schema there: each kind that may appear is
listed here and reported as skipped; any other object without a schema is an error, never a silent pass."""

from __future__ import annotations

import functools

import kubernetes_validate
from kubernetes_validate import utils
from kubernetes_validate.utils import SchemaNotFoundError

from .manifests import Obj, name

# kubernetes-validate reads and parses a kind's schema and the whole definitions file (megabytes of
# JSON), and lists its bundled versions, for every object it validates: 3 s per Kubernetes version
# for the production overlay on a 2-core machine, 0.2 s with each done once. The parsed schemas are
# only read, never changed.
utils.schema_contents = functools.lru_cache(maxsize=None)(utils.schema_contents)
utils.all_versions = functools.lru_cache(maxsize=None)(utils.all_versions)

# Custom resources the manifests may use, by apiVersion and kind, and where their definition lives.
CUSTOM_KINDS = {
    ("postgresql.cnpg.io/v1", "Cluster"): "CloudNativePG (components/cloudnative-pg)",
}


def validate(objs: list[Obj], versions: list[str]) -> tuple[list[str], list[str]]:
    """(problems, skipped): one line per object that fails a version's schema, one per custom resource."""
    problems: list[str] = []
    skipped: list[str] = []
    for obj in objs:
        what = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        custom = CUSTOM_KINDS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                problems.append(f"{what}: Kubernetes {version} refuses {path or 'it'}: {exc.message}")
            except SchemaNotFoundError:
                if custom is None:
                    problems.append(
                        f"{what}: no schema for {obj.get('apiVersion')} {obj.get('kind')} in Kubernetes {version}, "
                        "and it is not a listed custom resource (kubecheck/schema.py CUSTOM_KINDS)"
                    )
                    break
                skipped.append(f"{obj['apiVersion']} {obj['kind']} {name(obj)} ({custom})")
                break
    return problems, sorted(set(skipped))
