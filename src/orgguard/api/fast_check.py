"""``POST /v1/check`` and ``/v1/check/batch`` without the framework, for the
common case.

A check is the hottest request there is, and routing it through FastAPI
(router, dependency solver, exception middleware) costs several times the
decision itself. This middleware answers a well-formed check from an
authenticated caller that may ask checks directly: the same model validates
the body (``CheckRequest``, ``BatchRequest``), the same gate allows the
caller, the same ``Authorizer`` decides, and the answer has the same bytes as
the route's.

Anything else (a body that does not validate, a caller without
``decisions:check``, a body over the limit, a batch over the limit or one that
overlapped a write) is handed, body and all, to the FastAPI route, which
gives the usual error or waits for the write (or for the ``min_revision``
asked). ``tests/test_api_checks.py`` holds
the two paths to the same answers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orgguard.access import Caller
from orgguard.api.schemas import BatchRequest, CheckItem, CheckRequest
from orgguard.policy.actions import DECISIONS_CHECK
from orgguard.policy.index import Decision
from orgguard.service import Authorizer

PATHS = frozenset({"/v1/check", "/v1/check/batch"})

decisions_log = logging.getLogger("orgguard.decisions")


class FastCheck:
    def __init__(self, app: ASGIApp, max_bytes: int, enabled: bool = True) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state") or {}
        caller = state.get("caller")
        if (
            not self.enabled
            or scope["type"] != "http"
            or scope["path"] not in PATHS
            or scope["method"] != "POST"
            or caller is None
        ):
            await self.app(scope, receive, send)
            return

        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away: let the framework see it.
                await self.app(scope, _replay(chunks, message, receive), send)
                return
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.max_bytes:
                break
        authorizer: Authorizer = scope["app"].state.authorizer
        body = b"".join(chunks)
        answer = None
        if size <= self.max_bytes and _json_or_unsaid(scope):
            if scope["path"] == "/v1/check":
                answer = _check(authorizer, caller, body)
            else:
                limit = scope["app"].state.settings.max_batch
                answer = _batch(authorizer, caller, body, limit)
        if answer is None:
            # The route answers with the usual error (and logs a refusal).
            await self.app(scope, _replay(chunks, None, receive, more), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(answer)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def _check(authorizer: Authorizer, caller: Caller, body: bytes) -> bytes | None:
    try:
        request = CheckRequest.model_validate_json(body)
    except ValidationError:
        return None
    if (
        request.explain
        or behind(authorizer, request.min_revision)
        or not may_check(authorizer, caller)
    ):
        return None
    return answer_check(authorizer, request)


def answer_check(authorizer: Authorizer, request: CheckItem) -> bytes:
    """Decide one check and give the answer's bytes (this path's and the
    route's)."""
    decision, revision = authorizer.check_at(
        request.user, request.company, request.resource, request.action,
        request.owner,
    )  # fmt: skip
    if decisions_log.isEnabledFor(logging.DEBUG):
        log_decisions([request], [decision])
    answer = {
        "allowed": decision.allowed,
        "reason": decision.reason,
        "revision": revision,
    }
    return encode(answer)


def encode(answer: object) -> bytes:
    """JSON as FastAPI's JSONResponse writes it: compact, UTF-8."""
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()


def _batch(
    authorizer: Authorizer, caller: Caller, body: bytes, limit: int
) -> bytes | None:
    try:
        batch = BatchRequest.model_validate_json(body)
    except ValidationError:
        return None
    if (
        len(batch.checks) > limit
        or behind(authorizer, batch.min_revision)
        or not may_check(authorizer, caller)
    ):
        return None
    decided = authorizer.try_check_many(
        (c.user, c.company, c.resource, c.action, c.owner) for c in batch.checks
    )
    if decided is None:
        return None
    decisions, revision = decided
    if decisions_log.isEnabledFor(logging.DEBUG):
        log_decisions(batch.checks, decisions)
    results = [{"allowed": d.allowed, "reason": d.reason} for d in decisions]
    return encode({"results": results, "revision": revision})


def behind(authorizer: Authorizer, min_revision: int | None) -> bool:
    """The route waits for a revision this process does not serve yet (the
    caller's own rights are then decided at that revision too)."""
    return min_revision is not None and authorizer.index.revision < min_revision


def may_check(authorizer: Authorizer, caller: Caller) -> bool:
    return authorizer.gate.allows(authorizer.index, caller, DECISIONS_CHECK)


def log_decisions(requests: Sequence[CheckItem], decisions: Sequence[Decision]) -> None:
    """A debug line per decision. Callers test the level first, so below debug
    a check costs that one test and no line."""
    for request, decision in zip(requests, decisions, strict=True):
        decisions_log.debug(
            "%s: %s",
            "allowed" if decision.allowed else "denied",
            decision.reason,
            extra={
                "allowed": decision.allowed,
                "user": request.user,
                "company": request.company,
                "permission": f"{request.resource}:{request.action}",
                "owner": request.owner,
            },
        )


def _json_or_unsaid(scope: Scope) -> bool:
    """The routes read a body as JSON when its Content-Type says JSON or says
    nothing; anything else gets the route's 422 with a hint."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return True


def _replay(
    chunks: list[bytes],
    pending: Message | None,
    receive: Receive,
    more_body: bool = False,
) -> Receive:
    """A receive that first hands back what was already read."""
    queue: list[Message] = [
        {"type": "http.request", "body": b"".join(chunks), "more_body": more_body}
    ]
    if pending is not None:
        queue = [pending] if not chunks else [*queue, pending]

    async def replay() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replay
