"""The web app's API client is generated from the gateway's OpenAPI document: what is committed is
exactly what `make gen` writes now (scripts/gen-api-client.sh), so the app cannot drift from the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATED = REPO / "frontend/src/app/api/generated"
GENERATOR = REPO / "frontend/node_modules/.bin/openapi-typescript"


def test_the_committed_api_client_is_what_make_gen_writes(tmp_path: Path) -> None:
    assert GENERATOR.exists(), "run make -C frontend install (make test does) for openapi-typescript"
    made = subprocess.run(
        [str(REPO / "scripts/gen-api-client.sh"), str(tmp_path)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    for name in ("openapi.json", "schema.ts"):
        fresh = (tmp_path / "frontend/src/app/api/generated" / name).read_text()
        committed = (GENERATED / name).read_text()
        assert fresh == committed, f"{name} is stale: run make gen and commit the result"


def test_the_generated_document_has_every_route_the_web_app_calls() -> None:
    doc = json.loads((GENERATED / "openapi.json").read_text())
    schema = (GENERATED / "schema.ts").read_text()
    for path in doc["paths"]:
        assert f'"{path}": {{' in schema, path
    # Spot checks that the types carry the contract's words, not just the paths.
    assert '"/api/v1/auth/login"' in schema
    assert 'role: "admin" | "user";' in schema
