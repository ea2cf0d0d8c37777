"""For operators and load balancers: alive, ready, metrics. No credential:
they say nothing about any company."""

from __future__ import annotations

from contextlib import suppress

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orgguard.api.probe import DatabaseProbe
from orgguard.errors import OrgguardError
from orgguard.service import Authorizer

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive and serving HTTP."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "not ready; says why"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready (200) when this process serves the database's latest revision.

    Degraded (still 200: checks are answered from the last good policy) when
    the database fails or does not answer within a second, or when on
    PostgreSQL the change listener is reconnecting (writes are then picked up
    every ORGGUARD_REFRESH_SECONDS). Not ready (503) while it is behind the
    database."""
    authorizer: Authorizer = request.app.state.authorizer
    probe: DatabaseProbe = request.app.state.probe
    serving = authorizer.revision
    try:
        stored = await probe.revision()
    except OrgguardError as error:
        return _degraded(serving, f"database unreachable: {error.message}")
    if stored > serving:
        return _not_ready(serving, f"behind the database by {stored - serving}")
    listener = request.app.state.listener
    if listener is not None and not listener.connected.is_set():
        return _degraded(serving, "change listener reconnecting")
    return JSONResponse({"status": "ready", "revision": serving})


def _degraded(revision: int, reason: str) -> JSONResponse:
    return JSONResponse({"status": "degraded", "reason": reason, "revision": revision})


def _not_ready(revision: int, reason: str) -> JSONResponse:
    body = {"status": "not ready", "reason": reason, "revision": revision}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    with suppress(OrgguardError):  # the lag then says -1
        await request.app.state.probe.revision()
    registry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
