"""The application factory: routes, error mapping, and the authorizer's lifetime."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orgguard import __version__
from orgguard.api.routes import (
    audit,
    check,
    companies,
    groups,
    keys,
    members,
    roles,
    users,
)
from orgguard.api.schemas import ErrorBody
from orgguard.auth import Authenticator
from orgguard.errors import Forbidden, OrgguardError, PolicyFileError, Unauthenticated
from orgguard.memory import PauseWatch
from orgguard.platform_admin import PlatformAdmin
from orgguard.service import Authorizer
from orgguard.settings import Settings

log = logging.getLogger(__name__)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (401, "no valid credential: send Authorization: Bearer <key or token>"),
        (403, "the caller may not do this; fields name what it lacks"),
        (404, "no such company, group or member"),
        (409, "the write contradicts the current state"),
        (413, "the body is too large"),
        (422, "invalid input; fields names each bad field"),
    )
}


def create_app(settings: Settings, authorizer: Authorizer | None = None) -> FastAPI:
    """Build the app; the authorizer is opened at start-up unless one is given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if authorizer is None:
            from orgguard.bootstrap import open_authorizer

            app.state.authorizer = open_authorizer(settings)
        else:
            app.state.authorizer = authorizer
        app.state.platform = PlatformAdmin(app.state.authorizer)
        app.state.authenticator = Authenticator(settings, app.state.platform)
        refresher = asyncio.create_task(
            _refresh_forever(app.state.authorizer, settings.refresh_seconds)
        )
        pauses = PauseWatch()
        pauses.install()
        yield
        pauses.remove()
        refresher.cancel()
        with suppress(asyncio.CancelledError):
            await refresher
        app.state.authorizer.store.engine.dispose()

    app = FastAPI(
        title="orgguard",
        version=__version__,
        summary="May user X do Y in company Z? Companies, groups, members, checks.",
        lifespan=lifespan,
        # Callers often omit Content-Type; a JSON body is still read as JSON.
        strict_content_type=False,
    )
    app.state.settings = settings
    for module in (check, companies, groups, members, users, keys, roles, audit):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    _add_error_handlers(app)
    # Starlette counts the bytes received (chunked bodies too); the outer one
    # answers a declared oversize in the API's error shape.
    app.add_middleware(
        RequestBodyLimitMiddleware, max_body_size=settings.max_body_bytes
    )
    app.add_middleware(DeclaredSizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(AuthenticateFirst)
    app.add_middleware(RequestId)
    return app


async def _refresh_forever(authorizer: Authorizer, seconds: float) -> None:
    """Pick up writes made by other processes (the CLI) within ``seconds``."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(authorizer.refresh)
        except Exception:
            log.exception("refresh from the database failed; serving the last policy")


def error_response(
    status: int, code: str, message: str, fields: list[dict[str, str]] | None = None
) -> JSONResponse:
    body = {"error": code, "message": message, "fields": fields or []}
    return JSONResponse(body, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OrgguardError)
    async def on_orgguard_error(request: Request, error: OrgguardError) -> JSONResponse:
        fields = (
            [{"field": error.field, "message": error.message}] if error.field else []
        )
        if isinstance(error, PolicyFileError):
            fields = [{"field": "files", "message": p} for p in error.problems]
        if isinstance(error, Forbidden):
            fields = [
                {"field": error.field or "permission", "message": f"lacks {missing}"}
                for missing in error.missing
            ]
        response = error_response(error.status, error.code, error.message, fields)
        if isinstance(error, Unauthenticated):
            response.headers["WWW-Authenticate"] = _challenge(
                bool(request.headers.get("authorization"))
            )
        return response

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(
        request: Request, error: RequestValidationError
    ) -> JSONResponse:
        fields = [_field_error(item) for item in error.errors()]
        content_type = request.headers.get("content-type", "")
        if content_type and "json" not in content_type:
            fields.insert(
                0,
                {
                    "field": "body",
                    "message": "send the body as JSON (Content-Type: "
                    f"application/json), not {content_type.split(';')[0]}",
                },
            )
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return error_response(422, "invalid_input", summary, fields)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(
        _request: Request, error: StarletteHTTPException
    ) -> JSONResponse:
        return error_response(error.status_code, "http_error", str(error.detail))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; see the log")


def _field_error(item: dict[str, Any]) -> dict[str, str]:
    if item.get("type") == "json_invalid":
        position = item.get("loc", ("body", "?"))[-1]
        detail = item.get("ctx", {}).get("error", "")
        return {"field": "body", "message": f"invalid JSON at {position}: {detail}"}
    message = str(item.get("msg", "")).removeprefix("Value error, ")
    return {"field": _field_name(item.get("loc", ())), "message": message}


def _field_name(loc: tuple[object, ...] | list[object]) -> str:
    """('body', 'checks', 3, 'user') -> 'checks[3].user'; path and query keep
    their prefix ('path.company')."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "body"


class DeclaredSizeLimit:
    """Answer 413 in the API's error shape when Content-Length is over the limit.

    Starlette's ``RequestBodyLimitMiddleware`` enforces the limit on the bytes
    received (chunked bodies included) but answers a declared oversize in plain
    text.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                declared = name == b"content-length" and value.isdigit()
                if declared and int(value) > self.max_bytes:
                    response = error_response(
                        413,
                        "too_large",
                        f"request bodies are limited to {self.max_bytes} bytes",
                    )
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _challenge(credential_sent: bool) -> str:
    challenge = 'Bearer realm="orgguard"'
    return challenge + ', error="invalid_token"' if credential_sent else challenge


class AuthenticateFirst:
    """Authenticate every ``/v1/`` request before anything reads its body, so a
    caller without a valid credential gets 401 whatever it sent; the routes
    find the caller in ``request.state.caller``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        given = [v for k, v in scope["headers"] if k == b"authorization"]
        header = given[0].decode("latin-1") if given else None
        state = scope.setdefault("state", {})
        authenticator: Authenticator = scope["app"].state.authenticator
        try:
            if len(given) > 1:
                raise Unauthenticated("send one Authorization header, not several")
            state["caller"] = await run_in_threadpool(
                authenticator.authenticate, header, state.get("request_id")
            )
        except OrgguardError as error:
            response = error_response(error.status, error.code, error.message)
            if isinstance(error, Unauthenticated):
                response.headers["WWW-Authenticate"] = _challenge(bool(header))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


class RequestId:
    """Give every request an id: the caller's ``X-Request-ID`` if it is a
    plain token of up to 128 characters, else a new one; echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (v for k, v in scope["headers"] if k == b"x-request-id"), b""
        ).decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)
