"""The application factory: routes, error mapping, and the authorizer's lifetime."""

from __future__ import annotations

import asyncio
import itertools
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
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orgguard import __version__
from orgguard.api import consistency
from orgguard.api.fast_check import FastCheck
from orgguard.api.metrics import make_registry
from orgguard.api.probe import DatabaseProbe
from orgguard.api.routes import (
    audit,
    check,
    companies,
    groups,
    keys,
    members,
    ops,
    policy,
    roles,
    users,
)
from orgguard.api.schemas import PATTERN_RULES, ErrorBody
from orgguard.auth import Authenticator
from orgguard.errors import (
    Forbidden,
    OrgguardError,
    PolicyFileError,
    Unauthenticated,
    Unavailable,
)
from orgguard.ids import NAME_ID_RULE, USER_ID_RULE
from orgguard.logs import REQUEST_ID
from orgguard.logs import configure as configure_logs
from orgguard.memory import PauseWatch
from orgguard.platform_admin import PlatformAdmin
from orgguard.service import Authorizer
from orgguard.settings import Settings
from orgguard.storage.listener import ChangeListener

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


def create_app(
    settings: Settings,
    authorizer: Authorizer | None = None,
    *,
    fast_check: bool = True,
) -> FastAPI:
    """Build the app; the authorizer is opened at start-up unless one is given.
    ``fast_check=False`` sends every check through the FastAPI route (tests
    compare the two)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if authorizer is None:
            from orgguard.bootstrap import open_authorizer

            app.state.authorizer = open_authorizer(settings)
        else:
            app.state.authorizer = authorizer
        app.state.platform = PlatformAdmin(app.state.authorizer)
        app.state.listener = _listen(app.state.authorizer)
        app.state.probe = DatabaseProbe(app.state.authorizer.store)
        app.state.metrics = make_registry(
            app.state.authorizer, app.state.probe, app.state.listener
        )
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
        app.state.probe.close()
        if app.state.listener is not None:
            await run_in_threadpool(app.state.listener.stop)
        app.state.authorizer.store.close()

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
    app.include_router(policy.router, responses=ERROR_RESPONSES)
    app.include_router(ops.router)
    _add_error_handlers(app)
    # Starlette counts the bytes received (chunked bodies too); Edge, outside
    # it, answers a declared oversize in the API's error shape.
    app.add_middleware(
        RequestBodyLimitMiddleware, max_body_size=settings.max_body_bytes
    )
    app.add_middleware(FastCheck, max_bytes=settings.max_body_bytes, enabled=fast_check)
    app.add_middleware(Edge, max_bytes=settings.max_body_bytes)
    return app


def _listen(authorizer: Authorizer) -> ChangeListener | None:
    """On PostgreSQL, hear every other replica's writes as they commit."""
    engine = authorizer.store.engine
    if engine.dialect.name != "postgresql":
        return None
    listener = ChangeListener(engine.url, authorizer.refresh)
    listener.start()
    return listener


def from_environment() -> FastAPI:
    """The app from ``ORGGUARD_*`` settings: each worker of ``orgguard serve
    --workers N`` builds its own, and logs as the parent process does."""
    settings = Settings()
    configure_logs(settings.log_level, settings.log_format)
    return create_app(settings)


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
        return orgguard_error_response(
            error, bool(request.headers.get("authorization"))
        )

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
        request: Request, error: StarletteHTTPException
    ) -> JSONResponse:
        if error.status_code == 413:  # a chunked body over the limit
            return _too_large(request.app.state.settings.max_body_bytes)
        return error_response(error.status_code, "http_error", str(error.detail))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        # Outside Edge (Starlette's outermost layer), so the id is named here.
        log.exception(
            "unexpected error on %s %s",
            request.method,
            request.url.path,
            extra={"request_id": getattr(request.state, "request_id", None)},
        )
        return error_response(500, "internal_error", "internal error; see the log")


def orgguard_error_response(
    error: OrgguardError, credential_sent: bool
) -> JSONResponse:
    """The API's answer to one of orgguard's errors: its status, the fields
    it names, and the headers its status calls for."""
    fields = [{"field": error.field, "message": error.message}] if error.field else []
    if isinstance(error, PolicyFileError):
        fields = [{"field": "files", "message": p} for p in error.problems]
    if isinstance(error, Forbidden):
        fields = [
            {"field": error.field or "permission", "message": f"lacks {missing}"}
            for missing in error.missing
        ]
    response = error_response(error.status, error.code, error.message, fields)
    if isinstance(error, Unavailable):
        response.headers["Retry-After"] = "1"
    if isinstance(error, Unauthenticated):
        response.headers["WWW-Authenticate"] = _challenge(credential_sent)
    return response


def _field_error(item: dict[str, Any]) -> dict[str, str]:
    if item.get("type") == "json_invalid":
        # FastAPI's parser gives the offset in loc; pydantic's, in the text.
        position = item.get("loc", ("body",))[-1]
        detail = item.get("ctx", {}).get("error", "")
        where = f" at {position}" if isinstance(position, int) else ""
        return {"field": "body", "message": f"invalid JSON{where}: {detail}"}
    message = str(item.get("msg", "")).removeprefix("Value error, ")
    if item.get("type") in ("string_pattern_mismatch", "string_too_long"):
        rule = PATTERN_RULES.get(str(item.get("ctx", {}).get("pattern", "")))
        if rule is None and item.get("type") == "string_too_long":
            rule = {64: NAME_ID_RULE, 128: USER_ID_RULE}.get(
                item.get("ctx", {}).get("max_length", 0)
            )
        if rule is not None:
            message = f"must be {rule}"
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


def _too_large(max_bytes: int) -> JSONResponse:
    return error_response(
        413, "too_large", f"request bodies are limited to {max_bytes} bytes"
    )


def _challenge(credential_sent: bool) -> str:
    challenge = 'Bearer realm="orgguard"'
    return challenge + ', error="invalid_token"' if credential_sent else challenge


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# Made ids: this process's random prefix and a counter, unique across replicas
# and far cheaper than a UUID per request.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ids = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):016x}"


class Edge:
    """What every request passes first, in one layer (each ASGI layer costs a
    little on the hot path):

    - a request id: the caller's ``X-Request-ID`` if it is a plain token of up
      to 128 characters, else a new one; echoed on the response;
    - 413 in the API's error shape when Content-Length is over the limit
      (Starlette's ``RequestBodyLimitMiddleware``, inside, counts the bytes of
      chunked bodies but answers a declared oversize in plain text);
    - authentication of every ``/v1/`` request before anything reads its body,
      so a caller without a valid credential gets 401 whatever it sent; routes
      find the caller in ``request.state.caller``.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given_id = b""
        authorizations: list[bytes] = []
        declared = 0
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorizations.append(value)
            elif name == b"x-request-id":
                given_id = given_id or value
            elif name == b"content-length" and value.isdigit():
                declared = int(value)
        text_id = given_id.decode("latin-1")
        request_id = text_id if _REQUEST_ID.fullmatch(text_id) else _new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        # Log lines written while this request is served carry its id.
        token = REQUEST_ID.set(request_id)
        try:
            refusal = None
            if declared > self.max_bytes:
                refusal = _too_large(self.max_bytes)
            elif scope["path"].startswith("/v1/"):
                refusal = await self._authenticate(scope, state, authorizations)
                if refusal is None and scope["query_string"]:
                    refusal = await _reach_asked(scope)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
                return
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)

    async def _authenticate(
        self, scope: Scope, state: dict[str, Any], given: list[bytes]
    ) -> JSONResponse | None:
        header = given[0].decode("latin-1") if given else None
        authenticator: Authenticator = scope["app"].state.authenticator
        request_id = state["request_id"]
        try:
            if len(given) > 1:
                raise Unauthenticated("send one Authorization header, not several")
            if authenticator.blocks(header):
                state["caller"] = await run_in_threadpool(
                    authenticator.authenticate, header, request_id
                )
            else:  # microseconds: no thread hop on the hot path
                state["caller"] = authenticator.authenticate(header, request_id)
        except OrgguardError as error:
            return orgguard_error_response(error, bool(header))
        return None


async def _reach_asked(scope: Scope) -> JSONResponse | None:
    """Any API request may pass ``?min_revision=N``: it is answered from that
    revision or later, or gets 503 with Retry-After (see ``consistency``)."""
    app = scope["app"]
    try:
        wanted = consistency.from_query(scope["query_string"])
        await consistency.reach(
            app.state.authorizer, wanted, app.state.settings.min_revision_wait_seconds
        )
    except OrgguardError as error:
        return orgguard_error_response(error, credential_sent=True)
    return None
