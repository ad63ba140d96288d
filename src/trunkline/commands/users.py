"""``trunkline users``: add, remove, list and re-password SIP users in a data directory.

Passwords are hashed on the spot (HA1 for MD5, SHA-256 and SHA-512-256,
see :mod:`trunkline.store.users`) and never stored. Without ``--domain`` a
user joins the data directory's default domain. A running server picks up
the change at its next reload of the user store.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from trunkline.store.datadir import DEFAULT_DATA_DIR, DataDir
from trunkline.store.users import UserError, UserStore, demo_password

__all__ = ["app"]

app = typer.Typer(
    name="users",
    help="Manage SIP users (stored as digest HA1 hashes, never passwords).",
    no_args_is_help=True,
)

DataDirOption = Annotated[
    Path,
    typer.Option("--data-dir", help="The data directory (created if missing)."),
]
DomainOption = Annotated[
    str | None,
    typer.Option("--domain", help="The user's domain (default: the data directory's)."),
]


@contextlib.contextmanager
def _open(data_dir: Path, domain: str | None) -> Iterator[tuple[UserStore, str]]:
    directory = DataDir(data_dir)
    with contextlib.closing(directory.database()) as db:
        yield UserStore(db), domain or directory.default_domain(db)


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(1)


@app.command()
def add(
    name: Annotated[str, typer.Argument(help="The user name (the part before @).")],
    password: Annotated[
        str | None,
        typer.Option("--password", help="The password (default: a random one, printed once)."),
    ] = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    domain: DomainOption = None,
) -> None:
    """Add a user."""
    with _open(data_dir, domain) as (store, realm):
        generated = password is None
        secret = demo_password() if password is None else password
        try:
            user = store.add(name, realm, secret, time.time())
        except UserError as exc:
            raise _fail(exc) from None
        typer.echo(f"added {user.name}@{user.domain}")
        if generated:
            typer.echo(f"password: {secret}  (shown once; it is stored hashed)")


@app.command()
def remove(
    name: Annotated[str, typer.Argument(help="The user name.")],
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    domain: DomainOption = None,
) -> None:
    """Remove a user."""
    with _open(data_dir, domain) as (store, realm):
        try:
            store.remove(name, realm)
        except UserError as exc:
            raise _fail(exc) from None
        typer.echo(f"removed {name}@{realm}")


@app.command("list")
def list_users(
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    domain: Annotated[
        str | None, typer.Option("--domain", help="Only this domain's users.")
    ] = None,
) -> None:
    """List users in a table."""
    with _open(data_dir, None) as (store, _):
        users = store.users(domain)
        table = Table(title=f"{len(users)} user{'s' if len(users) != 1 else ''}")
        table.add_column("user")
        table.add_column("domain")
        table.add_column("digest algorithms")
        table.add_column("created (UTC)")
        for user in users:
            created = datetime.datetime.fromtimestamp(user.created_at, datetime.UTC)
            table.add_row(
                user.name,
                user.domain,
                ", ".join(user.ha1),
                created.strftime("%Y-%m-%d %H:%M"),
            )
        Console(width=100).print(table)


@app.command()
def passwd(
    name: Annotated[str, typer.Argument(help="The user name.")],
    password: Annotated[
        str | None,
        typer.Option("--password", help="The new password (prompted for when omitted)."),
    ] = None,
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    domain: DomainOption = None,
) -> None:
    """Change a user's password."""
    with _open(data_dir, domain) as (store, realm):
        if not store.exists(name, realm):
            raise _fail(UserError(f"no user {name}@{realm}"))
        if password is None:
            password = str(typer.prompt("New password", hide_input=True, confirmation_prompt=True))
        try:
            store.passwd(name, realm, password)
        except UserError as exc:
            raise _fail(exc) from None
        typer.echo(f"password changed for {name}@{realm}")
