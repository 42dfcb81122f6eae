"""The gateway's install routes: /install-agent.sh as it is served, and the /downloads it points at."""

from __future__ import annotations

import hashlib
import http.client
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from .install_support import ARTIFACT, Served, asgi_client, serve_gateway


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One live gateway for the module, serving the fake agent; the script as it serves it."""
    with serve_gateway(tmp_path_factory.mktemp("gateway")) as found:
        yield found


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(tmp_path) as c:
        yield c


# --- the script as served ---------------------------------------------------------------------


async def test_install_script_is_served_as_a_shell_script_that_is_never_cached(client: httpx.AsyncClient) -> None:
    reply = await client.get("/install-agent.sh")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/x-shellscript; charset=utf-8"
    assert reply.headers["cache-control"] == "no-store"
    assert reply.text.startswith("#!/usr/bin/env bash\n")
    assert reply.text.rstrip().endswith('main "$@"')


async def test_install_routes_are_not_part_of_the_api_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/api/v1/openapi.json")).json()["paths"]
    assert not [path for path in paths if "install" in path or "downloads" in path]


# --- the downloads --------------------------------------------------------------------------


@pytest.mark.parametrize("name", [ARTIFACT, f"{ARTIFACT}.sha256"])
async def test_downloads_say_the_agent_is_not_built_when_the_binary_is_absent(
    client: httpx.AsyncClient, name: str
) -> None:
    reply = await client.get(f"/downloads/{name}")
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["code"] == "agent_not_built"
    assert "make -C agent build" in body["detail"]


async def test_binary_is_served_with_a_sha256_that_follows_every_rebuild(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    binary = tmp_path / "dist" / ARTIFACT
    binary.parent.mkdir()
    for build, content in enumerate([b"\x7fELF first build" * 1000, b"\x7fELF other build" * 1000]):
        binary.write_bytes(content)
        # Same size both times: only the modification time tells the builds apart.
        os.utime(binary, ns=(build * 10**9, build * 10**9))
        got = await client.get(f"/downloads/{ARTIFACT}")
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.content == content
        sums = await client.get(f"/downloads/{ARTIFACT}.sha256")
        assert sums.status_code == 200
        assert sums.text == f"{hashlib.sha256(got.content).hexdigest()}  {ARTIFACT}\n"


@pytest.mark.parametrize(
    "path",
    [
        "/downloads/other",
        f"/downloads/{ARTIFACT}.sig",
        "/downloads/",
        "/downloads/../secret.txt",
        "/downloads/..%2Fsecret.txt",
        "/downloads/%2e%2e/secret.txt",
        "/downloads/../../secret.txt",
        f"/downloads/./{ARTIFACT}/../../secret.txt",
    ],
)
def test_no_other_name_under_downloads_is_served(served: Served, path: str) -> None:
    # http.client sends the path exactly as written (httpx and curl would resolve the dots first).
    host, port = served.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        body = reply.read()
    finally:
        connection.close()
    assert reply.status == 404
    assert b"not for download" not in body
