"""`GET /install-agent.sh` and the agent downloads under `/downloads/` (API.md, outside /api/v1).

Only the names routed here are served: each is a fixed route, so no request path ever reaches
the file system. The `.sha256` is computed here from the binary being served, never read from a
file that could lag behind it.
"""

from __future__ import annotations

import hashlib
import threading
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from gpulab_gateway.problems import problem

router = APIRouter(include_in_schema=False)

ARTIFACT = "gpulab-agent-linux-amd64"
AGENT_NOT_BUILT = "agent_not_built"
SCRIPT = resources.files("gpulab_gateway.install").joinpath("install-agent.sh").read_text(encoding="utf-8")
_CHUNK = 1024 * 1024


class _DigestCache:
    """SHA-256 of the binary, remembered per (path, mtime, size): a rebuild is noticed at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[Path, tuple[int, int, str]] = {}

    def hexdigest(self, path: Path) -> str:
        before = path.stat()
        key = (before.st_mtime_ns, before.st_size)
        with self._lock:
            known = self._known.get(path)
        if known is not None and known[:2] == key:
            return known[2]
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
        after = path.stat()
        if (after.st_mtime_ns, after.st_size) == key:
            # Not remembered when the file changed while it was read: the next request reads it again.
            with self._lock:
                self._known[path] = (*key, digest.hexdigest())
        return digest.hexdigest()


_digests = _DigestCache()


def _binary(request: Request) -> Path | None:
    downloads: Path = request.app.state.settings.downloads_dir
    path = (downloads / ARTIFACT).absolute()
    return path if path.is_file() else None


def _not_built() -> Response:
    return problem(
        404,
        AGENT_NOT_BUILT,
        f"the agent binary is not built on this control plane: build it with `make -C agent build`, "
        f"which the gateway serves as {ARTIFACT} from GPULAB_DOWNLOADS_DIR",
    )


@router.get("/install-agent.sh")
async def install_script() -> Response:
    # no-store: a fixed script served from a cache could outlive the binary it downloads.
    return Response(SCRIPT, media_type="text/x-shellscript; charset=utf-8", headers={"Cache-Control": "no-store"})


@router.get(f"/downloads/{ARTIFACT}")
async def agent_binary(request: Request) -> Response:
    path = _binary(request)
    if path is None:
        return _not_built()
    # The name never changes between builds: always revalidate (FileResponse sends ETag and Last-Modified).
    return FileResponse(
        path, media_type="application/octet-stream", filename=ARTIFACT, headers={"Cache-Control": "no-cache"}
    )


@router.get(f"/downloads/{ARTIFACT}.sha256")
async def agent_binary_sha256(request: Request) -> Response:
    path = _binary(request)
    if path is None:
        return _not_built()
    try:
        # Hashing tens of MiB takes a while: off the event loop.
        digest = await run_in_threadpool(_digests.hexdigest, path)
    except FileNotFoundError:
        return _not_built()
    # sha256sum's format, so that `sha256sum -c` reads it too.
    return Response(
        f"{digest}  {ARTIFACT}\n", media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )
