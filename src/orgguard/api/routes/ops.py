"""For operators and load balancers: alive, ready, metrics. No credential:
they say nothing about any company."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orgguard.errors import OrgguardError
from orgguard.service import Authorizer

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready; says why"}})
def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and this process serves its latest
    revision (another process's write is picked up within
    ORGGUARD_REFRESH_SECONDS). A replica that is not ready still answers
    checks from the policy it has."""
    authorizer: Authorizer = request.app.state.authorizer
    serving = authorizer.revision
    try:
        stored = authorizer.store.revision()
    except OrgguardError as error:
        return _not_ready(serving, f"database unreachable: {error.message}")
    if stored > serving:
        return _not_ready(serving, f"behind the database by {stored - serving}")
    return JSONResponse({"status": "ready", "revision": serving})


def _not_ready(revision: int, reason: str) -> JSONResponse:
    body = {"status": "not ready", "reason": reason, "revision": revision}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    registry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
