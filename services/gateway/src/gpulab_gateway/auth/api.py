"""`/auth`: log in and out, who am I, and the invite a new user accepts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, Security

from gpulab_core import errors
from gpulab_core.contracts import identity as contract
from gpulab_core.contracts import operations as ops
from gpulab_gateway import sessions, upstream
from gpulab_gateway.auth.schemas import AcceptInvite, Credentials, InviteInfo, LoginResult
from gpulab_gateway.config import Settings
from gpulab_gateway.openapi import problems, problems_for

router = APIRouter(prefix="/auth", tags=["auth"])

InviteToken = Annotated[str, Path(min_length=1, max_length=200, description="the token from the invite email's link")]

NO_STORE = "no-store"  # replies that carry a session's secrets must not sit in any cache


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.post(
    "/login",
    summary="Log in: sets the session cookie and returns the CSRF token",
    responses={
        200: {
            "headers": {
                "Set-Cookie": {
                    "description": f"`{sessions.COOKIE_NAME}`: the session (HttpOnly; SameSite=Strict; Path=/; "
                    "Max-Age to the session's end; when the public URL is https, Secure and named "
                    f"`{sessions.HOST_PREFIX}{sessions.COOKIE_NAME}`)",
                    "schema": {"type": "string"},
                }
            }
        },
        **problems_for(ops.AUTH_LOGIN, 422),
    },
)
async def login(body: Credentials, request: Request, response: Response) -> LoginResult:
    # The contract's limit (64) is far above any IP address; a stranger "host" must not break login.
    client_ip = request.client.host[:64] if request.client is not None else None
    reply = await upstream.ask(
        request, ops.AUTH_LOGIN, contract.LoginRequest(email=body.email, password=body.password, client_ip=client_ip)
    )
    cache = sessions.cache_of(request)
    # Whatever session this browser had is over: its cookie is replaced below, and a session nobody
    # holds a cookie for should not stay valid on the server.
    old = request.cookies.get(sessions.cookie_name(_settings(request)))
    if old and old != reply.session_token and len(old) <= sessions.TOKEN_MAX_CHARS:
        try:
            await upstream.command(request, ops.AUTH_LOGOUT, contract.SessionRequest(session_token=old))
        except errors.GpulabError:
            pass  # best effort: the new session is what matters, and the old one expires anyway
        cache.end(sessions.token_key(old))
    cache.put(
        sessions.Session(
            key=sessions.token_key(reply.session_token),
            user=reply.user,
            csrf_token=reply.csrf_token,
            expires_at=reply.expires_at,
        )
    )
    sessions.set_cookie(response, _settings(request), reply.session_token, reply.expires_at)
    response.headers["Cache-Control"] = NO_STORE
    return LoginResult(user=reply.user, csrf_token=reply.csrf_token)


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    summary="Log out: ends the session on the server and clears the cookie",
    dependencies=[Security(sessions.csrf_header)],
    responses=problems_for(ops.AUTH_LOGOUT, 403),
)
async def logout(request: Request, token: Annotated[str | None, Security(sessions.session_cookie)]) -> Response:
    # Idempotent: without a live session there is nothing to end, and the cookie is cleared anyway.
    session = await sessions.resolve(request, token)
    if session is not None and token is not None:
        sessions.check_csrf(request, session)
        await upstream.command(request, ops.AUTH_LOGOUT, contract.SessionRequest(session_token=token))
        sessions.cache_of(request).end(session.key)
    response = Response(status_code=204)
    sessions.clear_cookie(response, _settings(request))
    return response


@router.get(
    "/me",
    summary="The logged-in user; the `X-CSRF-Token` header carries the session's CSRF token",
    responses={
        200: {
            "headers": {
                sessions.CSRF_HEADER: {
                    "description": "the session's CSRF token, for a page that lost it (e.g. after a reload)",
                    "schema": {"type": "string"},
                }
            }
        },
        **problems(401),
    },
)
async def me(session: sessions.UserRead, response: Response) -> contract.User:
    response.headers[sessions.CSRF_HEADER] = session.csrf_token
    response.headers["Cache-Control"] = NO_STORE
    return session.user


@router.get(
    "/invites/{token}",
    summary="What an invite is for, before accepting it",
    responses=problems_for(ops.INVITES_LOOKUP, 422),
)
async def lookup_invite(token: InviteToken, request: Request) -> InviteInfo:
    reply = await upstream.ask(request, ops.INVITES_LOOKUP, contract.InviteTokenRequest(token=token))
    return InviteInfo(email=reply.email, expires_at=reply.expires_at)


@router.post(
    "/invites/{token}/accept",
    status_code=201,
    summary="Accept an invite: set name and password; the account is active (log in next)",
    responses=problems_for(ops.INVITES_ACCEPT),
)
async def accept_invite(token: InviteToken, body: AcceptInvite, request: Request) -> contract.User:
    return await upstream.ask(
        request, ops.INVITES_ACCEPT, contract.AcceptInviteRequest(token=token, name=body.name, password=body.password)
    )
