"""`gpulab`: the operator's command line. Talks to identity's database directly (settings from GPULAB_*).

gpulab admin create --email you@lab.org      # asks for the password (or --password-stdin)
gpulab audit verify                           # recomputes the audit log's hash chain
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from gpulab_core import db
from gpulab_core.errors import GpulabError
from gpulab_core.settings import load_settings
from gpulab_identity.audit import repository as audit
from gpulab_identity.bootstrap import ensure_admin
from gpulab_identity.config import Settings
from gpulab_identity.models import SCHEMA
from gpulab_identity.passwords import Passwords

app = typer.Typer(help="gpulab's command line for operators.", no_args_is_help=True, add_completion=False)
admin_app = typer.Typer(help="Manage administrators.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(audit_app, name="audit")


# identity's secrets that the local run generates (gpulab_devstack.run.local_secret: one file each in
# $GPULAB_DATA_DIR/secrets/), read from there when unset, so that the commands work against it as-is.
LOCAL_RUN_SECRETS = ("GPULAB_AUDIT_HMAC_KEY", "GPULAB_INVITE_SEAL_KEY")


def _settings() -> Settings:
    folder = Path(os.environ.get("GPULAB_DATA_DIR", ".gpulab")) / "secrets"
    for variable in LOCAL_RUN_SECRETS:
        path = folder / variable.removeprefix("GPULAB_").lower()
        if variable not in os.environ and path.is_file():
            os.environ[variable] = path.read_text().strip()
    return load_settings(Settings, "gpulab")


@admin_app.command("create")
def admin_create(
    email: Annotated[str, typer.Option(help="the admin's email (their login)")],
    name: Annotated[str, typer.Option(help="the admin's display name")] = "Administrator",
    password_stdin: Annotated[bool, typer.Option(help="read the password from standard input")] = False,
    force: Annotated[bool, typer.Option(help="create even when an admin already exists")] = False,
) -> None:
    """Create an active admin (by default only when there is none yet)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password (12 to 128 characters)", hide_input=True, confirmation_prompt=True)
    settings = _settings()

    async def run() -> bool:
        engine = db.create_engine(settings.database_url, schema=SCHEMA, app_name="gpulab-cli")
        try:
            passwords = Passwords(settings.argon2_memory_kib, settings.argon2_time_cost)
            sessions = audit.keyed(db.session_factory(engine), settings.audit_hmac_key.get_secret_value().encode())
            return await ensure_admin(sessions, passwords, email, password, only_if_none=not force, name=name)
        finally:
            await engine.dispose()

    try:
        made = asyncio.run(run())
    except GpulabError as exc:
        typer.echo(f"gpulab: {exc.message}", err=True)
        raise typer.Exit(1) from None
    if not made:
        typer.echo("gpulab: an admin already exists; nothing was created (use --force to add another)", err=True)
        raise typer.Exit(1)
    typer.echo(f"admin {email} created; log in at {settings.public_url}")


_WHY = {
    audit.CHAIN_BROKEN: "does not link to the row before it (a row was removed, inserted or re-hashed)",
    audit.ROW_ALTERED: "does not match its hash (the row was altered)",
    "": "does not match its hash",
}


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain of the whole audit log; exit 1 at the first row that does not match."""
    settings = _settings()

    async def run() -> audit.Verification:
        engine = db.create_engine(settings.database_url, schema=SCHEMA, app_name="gpulab-cli")
        try:
            async with engine.connect() as conn:
                return await audit.verify(conn, settings.audit_hmac_key.get_secret_value().encode())
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    if result.intact:
        typer.echo(f"audit log intact: {result.rows} rows, hash chain verified")
        return
    typer.echo(
        f"audit log TAMPERED: row seq={result.broken_at_seq} id={result.broken_id} {_WHY[result.problem or '']} "
        f"(the {result.rows} rows before it are intact)",
        err=True,
    )
    raise typer.Exit(1)


if __name__ == "__main__":
    app()
