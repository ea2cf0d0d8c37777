"""The ``orgguard`` command line. Exit codes: 0 allowed or done, 1 denied, and
each error's own code (see ``orgguard.errors``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from orgguard.errors import NotFound, OrgguardError
from orgguard.ids import check_name_id, check_user_id
from orgguard.settings import Settings

app = typer.Typer(
    help="orgguard: may user X do Y in company Z?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def _fail(error: OrgguardError) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(error.exit_code)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind")] = None,
) -> None:
    """Serve the API (loads the policy directory into an empty database first)."""
    import uvicorn

    from orgguard.api.app import create_app
    from orgguard.bootstrap import open_authorizer

    settings = Settings()
    _configure_logging(settings.log_level)
    try:
        authorizer = open_authorizer(settings)
    except OrgguardError as error:
        raise _fail(error) from error
    uvicorn.run(
        create_app(settings, authorizer),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
    )


@app.command()
def check(
    user: str,
    resource: str,
    action: str,
    company: Annotated[str, typer.Option(help="the company (Casbin domain)")],
    owner: Annotated[str | None, typer.Option(help="who owns the resource")] = None,
) -> None:
    """Decide from the database: exit 0 when allowed, 1 when denied."""
    from orgguard.bootstrap import open_authorizer

    settings = Settings()
    _configure_logging("warning")
    try:
        check_user_id(user, "user")
        check_name_id(company, "company")
        check_name_id(resource, "resource")
        check_name_id(action, "action")
        if owner is not None:
            check_user_id(owner, "owner")
        _require_database(settings.database_url)
        authorizer = open_authorizer(settings, first_start_load=False)
    except OrgguardError as error:
        raise _fail(error) from error
    decision = authorizer.check(user, company, resource, action, owner)
    verdict = "allowed" if decision.allowed else "denied"
    typer.echo(f"{verdict}: {decision.reason} (revision {authorizer.revision})")
    raise typer.Exit(0 if decision.allowed else 1)


@app.command()
def load(
    directory: Annotated[Path, typer.Argument(help="a policy directory")],
) -> None:
    """Validate a policy directory and load it into an empty database."""
    from orgguard.bootstrap import open_authorizer
    from orgguard.policy.files import read_policy_dir

    settings = Settings()
    _configure_logging("warning")
    try:
        snapshot = read_policy_dir(directory)
        authorizer = open_authorizer(settings, first_start_load=False)
        revision = authorizer.load_snapshot(snapshot)
    except OrgguardError as error:
        raise _fail(error) from error
    typer.echo(
        f"loaded {directory}: {len(snapshot.companies)} companies, "
        f"{len(snapshot.members)} memberships, revision {revision}"
    )


def _require_database(url: str) -> None:
    """``check`` reads an existing database; it never creates or loads one."""
    from sqlalchemy import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    on_disk = database not in ("", ":memory:")
    if (
        parsed.get_backend_name() == "sqlite"
        and on_disk
        and not Path(database).is_file()
    ):
        raise NotFound(
            f"no database at {url} (run 'orgguard serve' or 'orgguard load' "
            "first, or set ORGGUARD_DATABASE_URL)"
        )


def main() -> None:
    app()
