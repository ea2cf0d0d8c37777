"""The whole policy as files: export as an archive, import one (or try it)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from orgguard.access import Caller
from orgguard.api.deps import AuthorizerDep, CallerDep
from orgguard.api.routes.companies import REVISION_HEADER
from orgguard.api.schemas import AccessChangePublic, PolicyImportResult
from orgguard.errors import PolicyFileError
from orgguard.policy.actions import POLICY_READ, POLICY_WRITE
from orgguard.policy.archive import MEDIA_TYPES, ArchiveFormat, pack, unpack
from orgguard.policy_admin import ImportResult, PolicyAdmin

router = APIRouter(prefix="/v1/policy", tags=["policy"])


async def get_policy_admin(authorizer: AuthorizerDep) -> PolicyAdmin:
    return PolicyAdmin(authorizer)


PolicyAdminDep = Annotated[PolicyAdmin, Depends(get_policy_admin)]


@router.get(
    "/export",
    response_class=Response,
    responses={
        200: {
            "content": {media: {} for media in MEDIA_TYPES.values()},
            "description": "catalogue.csv, templates.csv, platform.csv and "
            "companies/<id>.csv, as orgguard policy export writes them",
        }
    },
)
def read_policy_export(
    policy: PolicyAdminDep,
    caller: CallerDep,
    form: Annotated[
        ArchiveFormat, Query(alias="format", description="tar.gz or zip")
    ] = "tar.gz",
) -> Response:
    """The stored policy as canonical Casbin CSV files in one archive."""
    exported = policy.export(caller)
    name = f"orgguard-policy-{exported.revision}.{form}"
    return Response(
        pack(exported.files, form),
        media_type=MEDIA_TYPES[form],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            REVISION_HEADER: str(exported.revision),
        },
    )


@router.post(
    "/import",
    response_model=PolicyImportResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in MEDIA_TYPES.values()
            },
        }
    },
)
async def create_policy_import(
    request: Request,
    policy: PolicyAdminDep,
    caller: CallerDep,
    dry_run: Annotated[
        bool, Query(description="show the diff; change nothing")
    ] = False,
    prune: Annotated[
        bool, Query(description="also delete the companies the archive does not name")
    ] = False,
) -> PolicyImportResult:
    """Import an archive of policy files (as the export gives them) as one
    change, merged by company; refused whole, with every problem, if any file
    is wrong."""
    # Who may import is known before the body is read or unpacked.
    policy.authorizer.require(caller, POLICY_READ if dry_run else POLICY_WRITE)
    data = await request.body()
    return await run_in_threadpool(
        _import_archive, policy, caller, data, dry_run, prune
    )


def _import_archive(
    policy: PolicyAdmin, caller: Caller, data: bytes, dry_run: bool, prune: bool
) -> PolicyImportResult:
    with tempfile.TemporaryDirectory(prefix="orgguard-import-") as temporary:
        directory = Path(temporary)
        unpack(data, directory)
        try:
            result = policy.import_policy(
                caller, directory, prune=prune, dry_run=dry_run
            )
        except PolicyFileError as error:
            # Name the files as the archive does, not where they were unpacked.
            inside = f"{directory}/"
            raise PolicyFileError(
                [problem.replace(inside, "") for problem in error.problems]
            ) from error
    return _result(result, dry_run)


def _result(result: ImportResult, dry_run: bool) -> PolicyImportResult:
    diff = result.diff
    return PolicyImportResult(
        dry_run=dry_run,
        applied=result.applied,
        revision=result.revision,
        companies=diff.companies,
        added=diff.added,
        removed=diff.removed,
        access=[
            AccessChangePublic(
                company=a.company, user=a.user, gains=list(a.gains), loses=list(a.loses)
            )
            for a in diff.access
        ],
    )
