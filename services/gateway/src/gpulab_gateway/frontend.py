"""Serves the built web app at `/` with a single-page-app fallback to index.html.

The folder is looked at on each request, so a build that finishes while the gateway runs is served
without a restart. Paths under /api never fall back to the app.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

router = APIRouter(include_in_schema=False)

_NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>gpulab</title></head>
<body><h1>gpulab</h1><p>The web app is not built yet (it is being built by <code>make dev</code>,
or run <code>make -C frontend build</code>). The API is up at <a href="/api/v1/healthz">/api/v1/healthz</a>.</p>
</body></html>"""

RESERVED = ("api/", "downloads/")

# The web app's Content-Security-Policy, the Caddyfile's too (a test holds them equal): scripts only
# from the app's own origin, so an injected <script>, inline handler or javascript: URL never runs
# (the production build inlines none: angular.json turns critical-CSS inlining off, whose
# `onload` handler is the one inline script Angular would emit); never inside someone's frame (the
# portal shows one-time tokens and has admin buttons); no plugins; <base> and forms stay same-origin.
CONTENT_SECURITY_POLICY = (
    "script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
CSP = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}


def _resolve(root: Path, path: str) -> Path | None:
    """The file under root that `path` names, or None; never a file outside root."""
    try:
        candidate = (root / path).resolve()
        candidate.relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    return candidate if candidate.is_file() else None


@router.get("/{path:path}")
async def app_file(path: str, request: Request) -> Response:
    if path == "api" or path.startswith(RESERVED):
        raise HTTPException(404, "no such resource")
    root: Path = request.app.state.settings.frontend_dir
    index = root / "index.html"
    if not index.is_file():
        return HTMLResponse(_NOT_BUILT, status_code=503, headers={"Retry-After": "10", **CSP})
    found = _resolve(root, path) if path else None
    if found is not None:
        # Angular's hashed bundles never change under a name; index.html must always be fresh.
        cache = (
            "public, max-age=31536000, immutable" if found.name != "index.html" and "-" in found.stem else "no-cache"
        )
        return FileResponse(found, headers={"Cache-Control": cache, **CSP})
    if "." in path.rsplit("/", 1)[-1]:
        raise HTTPException(404, "no such file")
    return FileResponse(index, headers={"Cache-Control": "no-cache", **CSP})
