"""Decisions: may user X do Y in company Z?"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from orgguard.api.deps import AuthorizerDep, CallerDep
from orgguard.api.schemas import (
    BatchRequest,
    BatchResponse,
    CheckRequest,
    CheckResponse,
    CheckResult,
)
from orgguard.errors import InvalidInput
from orgguard.policy.actions import DECISIONS_CHECK

router = APIRouter(prefix="/v1/check", tags=["checks"])


@router.post("", response_model=CheckResponse)
async def check(
    body: CheckRequest, authorizer: AuthorizerDep, caller: CallerDep
) -> CheckResponse:
    """Decide one request; a deny always says why. Needs decisions:check."""
    authorizer.require(caller, DECISIONS_CHECK)
    decision = authorizer.check(
        body.user, body.company, body.resource, body.action, body.owner
    )
    return CheckResponse(
        allowed=decision.allowed, reason=decision.reason, revision=authorizer.revision
    )


@router.post("/batch", response_model=BatchResponse)
async def check_batch(
    body: BatchRequest, authorizer: AuthorizerDep, caller: CallerDep, request: Request
) -> BatchResponse:
    """Decide up to 1,000 requests at one revision; results in request order."""
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
    results = [CheckResult(allowed=d.allowed, reason=d.reason) for d in decisions]
    return BatchResponse(results=results, revision=revision)
