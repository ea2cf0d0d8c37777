"""Decisions: may user X do Y in company Z?"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from orgguard.access import Caller
from orgguard.api import consistency
from orgguard.api.deps import AuthorizerDep, CallerDep
from orgguard.api.fast_check import (
    answer_check,
    decisions_log,
    encode,
    log_decisions,
)
from orgguard.api.schemas import (
    BatchRequest,
    BatchResponse,
    CheckRequest,
    CheckResponse,
    CheckResult,
)
from orgguard.errors import InvalidInput
from orgguard.policy import casbin_rules
from orgguard.policy.actions import DECISIONS_CHECK
from orgguard.service import Authorizer
from orgguard.storage.store import AuditRecord

router = APIRouter(prefix="/v1/check", tags=["checks"])


@router.post(
    "",
    response_model=CheckResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/CheckRequest"}
                }
            },
        }
    },
)
async def check(request: Request) -> Response:
    """Decide one request; a deny always says why. Needs decisions:check.

    The hot path: the body is validated with the same model as everywhere
    (``CheckRequest``) but read and answered by hand, without FastAPI's
    per-parameter machinery, which costs more than the decision.
    """
    authorizer: Authorizer = request.app.state.authorizer
    caller: Caller = request.state.caller
    try:
        body = await _read_check(request)
    except RequestValidationError:
        # A caller who may not ask checks learns nothing about its body.
        authorizer.require(caller, DECISIONS_CHECK)
        raise
    # The caller's own rights too are decided at the revision asked.
    await consistency.reach(authorizer, body.min_revision, _wait(request))
    if body.explain:  # needs members:read in the company instead
        return await _explained(authorizer, caller, body)
    authorizer.require(caller, DECISIONS_CHECK)
    return Response(answer_check(authorizer, body), media_type="application/json")


async def _read_check(request: Request) -> CheckRequest:
    content_type = request.headers.get("content-type", "json")
    if "json" not in content_type.lower():
        # As FastAPI does for the other routes (the handler adds a hint).
        raise RequestValidationError(
            [
                {
                    "type": "content_type",
                    "loc": ("body",),
                    "msg": "the Content-Type is not JSON",
                }
            ]
        )
    try:
        return CheckRequest.model_validate_json(await request.body())
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
        ) from error


async def _explained(
    authorizer: Authorizer, caller: Caller, body: CheckRequest
) -> Response:
    explanation, revision, since, rule_ids = await run_in_threadpool(
        authorizer.explain,
        caller, body.user, body.company, body.resource, body.action, body.owner,
    )  # fmt: skip
    decision = explanation.decision
    answer = {
        "allowed": decision.allowed,
        "reason": decision.reason,
        "revision": revision,
        "explanation": {
            "memberships": [
                {
                    "user": body.user,
                    "group": group,
                    "company": body.company,
                    "since": _since(record),
                }
                for group, record in since.items()
            ],
            "rules": [
                {
                    "rule": match.rule,
                    "group": match.group,
                    "applies": match.applies,
                    "source": match.source,
                    "line": match.line,
                    "rule_id": rule_ids.get(casbin_rules.to_row(match.grant)),
                }
                for match in explanation.rules
            ],
            "near_misses": explanation.near_misses,
        },
    }  # fmt: skip
    return Response(encode(answer), media_type="application/json")


@router.post("/batch", response_model=BatchResponse)
async def check_batch(
    body: BatchRequest, authorizer: AuthorizerDep, caller: CallerDep, request: Request
) -> BatchResponse:
    """Decide up to 1,000 requests at one revision; results in request order."""
    # The caller's own rights too are decided at the revision asked.
    await consistency.reach(authorizer, body.min_revision, _wait(request))
    authorizer.require(caller, DECISIONS_CHECK)
    limit: int = request.app.state.settings.max_batch
    if len(body.checks) > limit:
        raise InvalidInput(f"checks: at most {limit} per batch", field="checks")
    requests = [
        (item.user, item.company, item.resource, item.action, item.owner)
        for item in body.checks
    ]
    # In a worker thread: the batch waits for an in-flight write, not the loop.
    decisions, revision = await run_in_threadpool(authorizer.check_many, requests)
    if decisions_log.isEnabledFor(logging.DEBUG):
        log_decisions(body.checks, decisions)
    results = [CheckResult(allowed=d.allowed, reason=d.reason) for d in decisions]
    return BatchResponse(results=results, revision=revision)


def _since(record: AuditRecord | None) -> dict[str, object] | None:
    """The change that made a membership, from the audit trail."""
    if record is None:
        return None
    return {
        "revision": record.revision,
        "at": record.at.isoformat(),
        "actor": record.actor,
        "action": record.action,
    }


def _wait(request: Request) -> float:
    seconds: float = request.app.state.settings.min_revision_wait_seconds
    return seconds
