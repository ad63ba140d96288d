"""The ``trunkline`` command line."""

from __future__ import annotations

import typer

from trunkline import __version__
from trunkline.commands import phone as phone_command
from trunkline.commands import serve as serve_command
from trunkline.commands import users as users_command

app = typer.Typer(
    name="trunkline",
    help="Trunkline: a self-hosted telephone system (SIP proxy, PBX, voice apps, softphone).",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(users_command.app, name="users")
app.add_typer(phone_command.app, name="phone")
serve_command.register(app)


@app.callback()
def _root() -> None:
    """Trunkline: a self-hosted telephone system."""


@app.command()
def version() -> None:
    """Print the Trunkline version."""
    typer.echo(f"trunkline {__version__}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
