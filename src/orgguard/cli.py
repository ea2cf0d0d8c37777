"""The ``orgguard`` command line. Exit codes: 0 allowed or done, 1 denied, and
each error's own code (see ``orgguard.errors``)."""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from orgguard import logs
from orgguard.access import Caller
from orgguard.errors import InvalidInput, NotFound, OrgguardError, Unavailable
from orgguard.ids import check_name_id, check_user_id
from orgguard.settings import Settings

if TYPE_CHECKING:
    from orgguard.platform_admin import PlatformAdmin
    from orgguard.policy_admin import PolicyAdmin
    from orgguard.service import Authorizer

app = typer.Typer(
    help="orgguard: may user X do Y in company Z?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="API keys for calling services", no_args_is_help=True)
roles_app = typer.Typer(help="platform roles of seller staff", no_args_is_help=True)
db_app = typer.Typer(help="the database schema (Alembic)", no_args_is_help=True)
app.add_typer(db_app, name="db")
policy_app = typer.Typer(
    help="the policy as files: export, validate, diff, import, test",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
app.add_typer(roles_app, name="roles")
app.add_typer(policy_app, name="policy")

DEMO_KEY_NAME = "demo-admin"
DEMO_KEY_FILE = Path("demo-admin.key")


def _operator() -> Caller:
    """The CLI acts on the database directly, as the local operator."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Caller.operator(name)


def _settings() -> Settings:
    """The settings from ORGGUARD_* variables; a bad one is exit 2, naming it."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as error:
        for problem in error.errors():
            name = "ORGGUARD_" + "_".join(str(p) for p in problem["loc"]).upper()
            typer.echo(f"error: {name}: {problem['msg']}", err=True)
        raise typer.Exit(InvalidInput.exit_code) from error


def _fail(error: OrgguardError) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(error.exit_code)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind")] = None,
    demo_key: Annotated[
        bool,
        typer.Option(
            help=f"replace the seller-admin key '{DEMO_KEY_NAME}', print it and "
            f"write it to ./{DEMO_KEY_FILE} (for the demo)"
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="worker processes on one port; each keeps the whole policy in "
            "memory and they agree through the database, like replicas",
        ),
    ] = 1,
) -> None:
    """Serve the API (loads the policy directory into an empty database first)."""
    import uvicorn

    from orgguard.api.app import create_app
    from orgguard.bootstrap import open_authorizer

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    host, port = host or settings.host, port or settings.port
    try:
        _require_free_port(host, port)
        authorizer = open_authorizer(settings)
        if demo_key:
            _issue_demo_key(authorizer)
    except OrgguardError as error:
        raise _fail(error) from error
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": settings.log_level,
        "access_log": settings.access_log,
        "log_config": None,  # its lines go through ours (orgguard.logs)
        "timeout_graceful_shutdown": settings.shutdown_seconds,
    }
    _exit_zero_after_sigterm()
    if workers == 1:
        uvicorn.run(create_app(settings, authorizer), **options)
        return
    # Each worker opens the database itself (the first start is done) and
    # configures its own logging (orgguard.api.app:from_environment).
    authorizer.store.close()
    uvicorn.run(
        "orgguard.api.app:from_environment", factory=True, workers=workers, **options
    )


def _exit_zero_after_sigterm() -> None:
    """uvicorn shuts down gracefully on SIGTERM, then raises the signal again
    under the handler it found: with this one, the process exits 0 (with the
    default one it would die of the signal). A SIGTERM before uvicorn takes
    over exits 0 at once, nothing being in flight yet."""

    def exit_zero(_signal: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, exit_zero)


@app.command()
def check(
    user: str,
    resource: str,
    action: str,
    company: Annotated[str, typer.Option(help="the company (Casbin domain)")],
    owner: Annotated[str | None, typer.Option(help="who owns the resource")] = None,
) -> None:
    """Decide from the database: exit 0 when allowed, 1 when denied."""

    try:
        check_user_id(user, "user")
        check_name_id(company, "company")
        check_name_id(resource, "resource")
        check_name_id(action, "action")
        if owner is not None:
            check_user_id(owner, "owner")
        authorizer = _open()
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

    settings = _settings()
    logs.configure("warning", settings.log_format)
    try:
        snapshot = read_policy_dir(directory)
        authorizer = open_authorizer(settings, first_start_load=False)
        revision = authorizer.load_snapshot(_operator(), snapshot)
    except OrgguardError as error:
        raise _fail(error) from error
    typer.echo(
        f"loaded {directory}: {len(snapshot.companies)} companies, "
        f"{len(snapshot.members)} memberships, revision {revision}"
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the schema this orgguard needs (creating it in
    an empty database). Safe to run at any time, from any number of hosts."""
    from orgguard.storage import migrate

    settings = _settings()
    logs.configure("warning", settings.log_format)
    with _schema_engine(settings, "migrate") as engine:
        before, after = migrate.upgrade(engine)
    if before == after:
        typer.echo(f"schema already at revision {after}")
    else:
        typer.echo(f"schema upgraded from {before or 'nothing'} to {after}")


@db_app.command("current")
def db_current() -> None:
    """The database's schema revision and the one this orgguard needs; exit 6
    when they differ."""
    from orgguard.storage import migrate

    settings = _settings()
    try:
        _require_database(settings.database_url)
    except OrgguardError as error:
        raise _fail(error) from error
    with (
        _schema_engine(settings, "read the schema") as engine,
        engine.connect() as connection,
    ):
        found = migrate.current(connection)
    typer.echo(f"database: {found or 'none'}; this orgguard needs: {migrate.head()}")
    if found != migrate.head():
        raise typer.Exit(Unavailable.exit_code)


@contextmanager
def _schema_engine(settings: Settings, doing: str) -> Iterator[Engine]:
    """An engine for the ``db`` commands; its errors become exit codes."""
    from orgguard.storage.database import make_engine

    engine = make_engine(settings.database_url)
    try:
        yield engine
    except OrgguardError as error:
        raise _fail(error) from error
    except SQLAlchemyError as error:
        raise _fail(Unavailable(f"cannot {doing}: {error}")) from error
    finally:
        engine.dispose()


def _require_free_port(host: str, port: int) -> None:
    """Fail before touching the database (or the demo key) if the address is
    taken, say by a server started earlier."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise Unavailable(
                f"cannot listen on {host}:{port} ({error.strerror}); stop the "
                "server already there or set ORGGUARD_PORT"
            ) from error


def _issue_demo_key(authorizer: Authorizer) -> None:
    from orgguard.platform_admin import PlatformAdmin

    platform = PlatformAdmin(authorizer)
    operator = _operator()
    if any(
        k.name == DEMO_KEY_NAME and k.revoked_at is None
        for k in platform.list_keys(operator)
    ):
        platform.revoke_key(operator, DEMO_KEY_NAME)
    created = platform.create_key(operator, DEMO_KEY_NAME, "seller-admin")
    DEMO_KEY_FILE.unlink(missing_ok=True)
    # Created readable by its owner only: the secret never sits in a wider file.
    descriptor = os.open(DEMO_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(created.secret + "\n")
    typer.echo(
        f"demo seller-admin API key (also in ./{DEMO_KEY_FILE}; replaced at every "
        f"'make run'):\n  export ORGGUARD_KEY={created.secret}"
    )


def _open() -> Authorizer:
    """The authorizer over an existing database, for the commands that read or
    change it (never creates one)."""
    from orgguard.bootstrap import open_authorizer

    settings = _settings()
    logs.configure("warning", settings.log_format)
    _require_database(settings.database_url)
    return open_authorizer(settings, first_start_load=False, create=False)


def _platform() -> PlatformAdmin:
    from orgguard.platform_admin import PlatformAdmin

    return PlatformAdmin(_open())


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="who uses the key, e.g. storefront")],
    role: Annotated[str, typer.Option(help="checker, seller-support, seller-admin")],
) -> None:
    """Create an API key; the key is printed once, alone on the last line."""
    try:
        created = _platform().create_key(_operator(), name, role)
    except OrgguardError as error:
        raise _fail(error) from error
    typer.echo(f"created API key '{name}' (role {role}, id {created.key.id}).")
    typer.echo("It is shown only now; orgguard keeps a salted hash. The key:")
    typer.echo(created.secret)


@keys_app.command("list")
def keys_list() -> None:
    """Every key with its role; revoked ones say since when."""
    try:
        keys = _platform().list_keys(_operator())
    except OrgguardError as error:
        raise _fail(error) from error
    for key in keys:
        state = "active" if key.revoked_at is None else f"revoked {key.revoked_at}"
        typer.echo(
            f"{key.name}\t{key.role}\t{key.id}\tcreated {key.created_at} by "
            f"{key.created_by}\t{state}"
        )


@keys_app.command("revoke")
def keys_revoke(name: str) -> None:
    """Revoke the active key of that name; every server refuses it at once."""
    try:
        revision = _platform().revoke_key(_operator(), name)
    except OrgguardError as error:
        raise _fail(error) from error
    typer.echo(f"revoked API key '{name}' (revision {revision})")


@roles_app.command("list")
def roles_list() -> None:
    """Who holds which platform role (keys as key:<name>)."""
    try:
        holders = _platform().list_roles(_operator())
    except OrgguardError as error:
        raise _fail(error) from error
    for subject, roles in holders:
        typer.echo(f"{subject}\t{', '.join(roles)}")


@roles_app.command("grant")
def roles_grant(user: str, role: str) -> None:
    """Give a person a platform role."""
    _change_roles(user, role, add=True)


@roles_app.command("revoke")
def roles_revoke(user: str, role: str) -> None:
    """Take a platform role from a person."""
    _change_roles(user, role, add=False)


def _change_roles(user: str, role: str, *, add: bool) -> None:
    try:
        check_user_id(user, "user")
        platform = _platform()
        held = set(platform.authorizer.index.roles.get(user, ()))
        wanted = held | {role} if add else held - {role}
        revision = platform.set_roles(_operator(), user, sorted(wanted))
    except OrgguardError as error:
        raise _fail(error) from error
    typer.echo(
        f"{user}: {', '.join(sorted(wanted)) or 'no roles'} (revision {revision})"
    )


@app.command()
def audit(
    company: Annotated[str | None, typer.Option(help="only this company")] = None,
    actor: Annotated[str | None, typer.Option(help="only this actor")] = None,
    since: Annotated[datetime | None, typer.Option(help="at or after (UTC)")] = None,
    until: Annotated[datetime | None, typer.Option(help="before (UTC)")] = None,
    before: Annotated[int | None, typer.Option(help="revisions below this")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """The audit trail, newest first, one JSON object a line."""
    try:
        if company is not None:
            check_name_id(company, "company")
        records = _platform().audit(
            _operator(), company, actor, since, until, before, limit
        )
    except OrgguardError as error:
        raise _fail(error) from error
    for r in records:
        line = {
            "revision": r.revision,
            "at": r.at.isoformat().replace("+00:00", "Z"),
            "actor": r.actor,
            "action": r.action,
            "company": r.company,
            "request_id": r.request_id,
            "before": r.before,
            "after": r.after,
        }
        typer.echo(json.dumps(line, ensure_ascii=False))
    if len(records) == limit:
        typer.echo(f"# more: --before {records[-1].revision}", err=True)


PolicyDir = Annotated[Path, typer.Argument(help="a policy directory")]
Prune = Annotated[
    bool, typer.Option(help="also delete the stored companies DIR does not name")
]


def _policy_admin() -> PolicyAdmin:
    from orgguard.policy_admin import PolicyAdmin

    return PolicyAdmin(_open())


@policy_app.command("export")
def policy_export(directory: PolicyDir) -> None:
    """Write the stored policy to DIR as canonical Casbin CSV (company files of
    companies no longer stored are removed; DIR/tests is left alone)."""
    from orgguard.policy.files import write_policy_dir

    try:
        exported = _policy_admin().export(_operator())
        write_policy_dir(directory, exported.files)
    except OrgguardError as error:
        raise _fail(error) from error
    except OSError as error:
        typer.echo(f"error: cannot write {directory}: {error}", err=True)
        raise typer.Exit(InvalidInput.exit_code) from error
    companies = sum(name.startswith("companies/") for name in exported.files)
    typer.echo(
        f"exported revision {exported.revision} to {directory}: {companies} companies"
    )


@policy_app.command("validate")
def policy_validate(directory: PolicyDir) -> None:
    """Check a whole policy directory without a database: every problem with
    its file and line; exit 1 on any."""
    from orgguard.errors import PolicyFileError
    from orgguard.policy.files import read_policy_dir

    try:
        snapshot = read_policy_dir(directory)
    except PolicyFileError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from error
    typer.echo(
        f"{directory}: valid ({len(snapshot.companies)} companies, "
        f"{len(snapshot.memberships())} memberships)"
    )


@policy_app.command("diff")
def policy_diff(directory: PolicyDir, prune: Prune = False) -> None:
    """What importing DIR would change: rules added and removed, and who gains
    or loses which permission in each company."""
    from orgguard.policy.diff import report_lines

    try:
        diff = _policy_admin().diff(_operator(), directory, prune=prune)
    except OrgguardError as error:
        raise _fail(error) from error
    for line in report_lines(diff):
        typer.echo(line)


@policy_app.command("import")
def policy_import(
    directory: PolicyDir,
    dry_run: Annotated[
        bool, typer.Option(help="show what would change; change nothing")
    ] = False,
    prune: Prune = False,
) -> None:
    """Validate DIR, show the diff and apply it as one change (all or nothing),
    merged by company: companies DIR does not name stay unless --prune."""
    from orgguard.policy.diff import report_lines

    try:
        result = _policy_admin().import_policy(
            _operator(), directory, prune=prune, dry_run=dry_run
        )
    except OrgguardError as error:
        raise _fail(error) from error
    for line in report_lines(result.diff):
        typer.echo(line)
    if dry_run:
        typer.echo(f"dry run: nothing changed (revision {result.revision})")
    elif result.applied:
        typer.echo(f"imported {directory} as revision {result.revision}")


@policy_app.command("test")
def policy_test(
    files: Annotated[list[Path], typer.Argument(help="YAML test files")],
    policy: Annotated[
        Path | None,
        typer.Option(help="decide from this policy directory, not the database"),
    ] = None,
) -> None:
    """Run policy tests: each case's check must get its expected decision.
    Failures are printed with the decision's reason; exit 1 on any."""
    from orgguard.policy.testing import read_tests, run_tests

    try:
        checks = read_tests(files)
        if policy is None:
            decide = _open().check
        else:
            from orgguard.policy.files import read_policy_dir
            from orgguard.policy.index import PolicyIndex

            decide = PolicyIndex.from_snapshot(read_policy_dir(policy)).decide
    except OrgguardError as error:
        raise _fail(error) from error
    outcomes = run_tests(decide, checks)
    failed = [outcome for outcome in outcomes if not outcome.passed]
    for outcome in failed:
        typer.echo(outcome.report())
    typer.echo(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    raise typer.Exit(1 if failed else 0)


@app.command()
def token(
    user: str,
    minutes: Annotated[int, typer.Option(min=1, max=24 * 60)] = 60,
) -> None:
    """Sign a bearer token for USER with ORGGUARD_JWT_SECRET (demos and tests;
    in production the seller's identity provider issues tokens)."""
    import jwt

    settings = _settings()
    try:
        check_user_id(user, "user")
        if settings.jwt_secret is None:
            raise InvalidInput("set ORGGUARD_JWT_SECRET to sign tokens")
    except OrgguardError as error:
        raise _fail(error) from error
    claims: dict[str, object] = {
        "sub": user,
        "iat": datetime.now(UTC),
        "exp": datetime.now(UTC) + timedelta(minutes=minutes),
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    typer.echo(jwt.encode(claims, settings.jwt_secret.get_secret_value(), "HS256"))


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
