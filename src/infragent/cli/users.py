"""``infragent users create|list|set-role|disable|reset-password``: people, from the server's shell.

Why a CLI besides the users page: the first admin of a server run without a browser at hand (a
provisioning script, ``--password-stdin``), the way back in when every admin forgot their password,
and disabling someone at once from the machine itself. It works on the configured database, as the
server does (same settings, migrations applied), and is safe next to a running server: a disabled
user or a changed role takes effect at that user's next request. The rules are
``auth/accounts.py``'s, the same as the API's and the page's; every change is audited with actor
``cli``. Exit codes: 0 done, 1 refused (the reason printed), 2 bad usage or settings.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from infragent.auth import accounts, scopes
from infragent.auth.accounts import AccountError
from infragent.cli.options import ConfigOpt, settings_or_exit
from infragent.store import access
from infragent.store.sql import SqlStore
from infragent.store.users import UserExistsError

users_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Users and their roles per tenant (docs/cli.md)."
)

ACTOR = "cli"
REFUSED, USAGE = 1, 2

EmailArg = Annotated[str, typer.Argument(help="The user's e-mail address.")]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="The tenant's client id.")]
StdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
]


def _open(config: ConfigOpt) -> SqlStore:
    """The configured store, migrated; one that cannot be opened ends the command with exit code 1."""
    import sqlalchemy as sa

    from infragent.errors import StoreError
    from infragent.store.sql import open_store

    url = settings_or_exit(config).resolved_database_url
    try:
        return open_store(url)
    except (sa.exc.SQLAlchemyError, OSError, StoreError, ValueError) as exc:
        shown = url.split("@")[-1] if "@" in url else url  # no credentials on screen
        typer.echo(f"infragent: cannot open the database {shown}: {exc}", err=True)
        raise typer.Exit(REFUSED) from exc


def _fail(message: str, code: int = REFUSED) -> typer.Exit:
    typer.echo(f"infragent users: {message}", err=True)
    return typer.Exit(code)


def _password(from_stdin: bool) -> str:
    """The new password: stdin's first line with ``--password-stdin``, else typed twice at a TTY."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise _fail("no terminal to type a password at: pass --password-stdin", USAGE)
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _tenant(store: SqlStore, tenant: str | None) -> str:
    """The tenant named, or the server's only one; else exit 2 listing the tenants to choose from."""
    with store.read() as conn:
        if tenant:
            if tenant not in access.tenant_names(conn, [tenant]):
                raise _fail(f"no tenant has the id {tenant!r}", USAGE)
            return tenant
        only = access.only_tenant(conn)
        known = access.tenants(conn)
    if only is not None:
        return only
    if not known:
        raise _fail("the server has no tenant yet: create the first admin with --admin", USAGE)
    listed = "\n".join(f"  {client_id}  {name}" for client_id, name in known)
    raise _fail(f"the server has several tenants; choose one with --tenant:\n{listed}", USAGE)


@users_app.command("create")
def create_command(
    email: EmailArg,
    name: Annotated[str, typer.Option("--name", help="How the user is shown.")] = "",
    admin: Annotated[
        bool, typer.Option("--admin", help="Role admin (the first admin on a fresh server).")
    ] = False,
    role: Annotated[str, typer.Option("--role", help="admin, operator or viewer.")] = "viewer",
    tenant: TenantOpt = None,
    company: Annotated[str, typer.Option("--company", help="The new tenant's name, when one is made.")] = "",
    password_stdin: StdinOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Add a user. With --admin on a server without users: the first admin (of the server's one
    tenant, or of a new tenant when there is none or several and --tenant is not given)."""
    chosen = "admin" if admin else role
    if chosen not in scopes.ALL_ROLES:
        raise _fail(f"unknown role {chosen!r}: choose from {', '.join(scopes.ALL_ROLES)}", USAGE)
    store = _open(config)
    try:
        password = _password(password_stdin)
        if chosen == "admin" and tenant is None and accounts.user_count(store) == 0:
            user, client_id = accounts.create_first_admin(store, email, name, password, company, time.time())
        else:
            client_id = _tenant(store, tenant)
            user = accounts.add_user(store, client_id, email, name, password, chosen, time.time(), ACTOR)
    except UserExistsError as exc:
        raise _fail(f"{exc}; to give them a role in another tenant: infragent users set-role") from None
    except AccountError as exc:
        raise _fail(exc.reason) from None
    finally:
        store.close()
    typer.echo(f"created {user.email} ({chosen}) in tenant {client_id}")


@users_app.command("list")
def list_command(tenant: TenantOpt = None, config: ConfigOpt = None) -> None:
    """Every user with their role, tenant by tenant (or one tenant's with --tenant)."""
    store = _open(config)
    try:
        with store.read() as conn:
            known = access.tenants(conn)
        if tenant is not None:
            known = [(client_id, company) for client_id, company in known if client_id == tenant]
            if not known:
                raise _fail(f"no tenant has the id {tenant!r}", USAGE)
        for client_id, company in known:
            typer.echo(f"{company}  ({client_id})")
            for m in accounts.members(store, client_id):
                state = "  disabled" if m.user.disabled else ""
                typer.echo(f"  {m.user.email:<40} {m.role:<9} {m.user.name}{state}")
    finally:
        store.close()


@users_app.command("set-role")
def set_role_command(
    email: EmailArg,
    role: Annotated[str, typer.Argument(help="admin, operator or viewer.")],
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Give the user ROLE in the tenant, adding them to it if they are not a member yet."""
    store = _open(config)
    try:
        client_id = _tenant(store, tenant)
        user = accounts.grant_role(store, client_id, email, role, time.time(), ACTOR)
    except AccountError as exc:
        raise _fail(exc.reason) from None
    finally:
        store.close()
    typer.echo(f"{user.email} is now {role} in tenant {client_id}")


@users_app.command("disable")
def disable_command(
    email: EmailArg,
    enable: Annotated[bool, typer.Option("--enable", help="Enable the user again instead.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Disable a user everywhere (their sessions end at once), or --enable them again."""
    store = _open(config)
    try:
        user = accounts.disable_everywhere(store, email, not enable, time.time(), ACTOR)
    except AccountError as exc:
        raise _fail(exc.reason) from None
    finally:
        store.close()
    typer.echo(f"{user.email} is {'enabled' if enable else 'disabled'}")


@users_app.command("reset-password")
def reset_password_command(
    email: EmailArg, password_stdin: StdinOpt = False, config: ConfigOpt = None
) -> None:
    """Set a new password for the user (their sessions end: they sign in with the new one)."""
    store = _open(config)
    try:
        password = _password(password_stdin)
        user = accounts.reset_password(store, email, password, time.time(), ACTOR)
    except AccountError as exc:
        raise _fail(exc.reason) from None
    finally:
        store.close()
    typer.echo(f"the password of {user.email} is changed")
