"""``lahstats``: the command line. ``process`` (``cli.local``) runs the whole pipeline on local
files with the embedded defaults (SQLite + local storage, no Redis); the rest
(``cli.operate``) serve and operate the backend."""

from __future__ import annotations

import typer

from cli import local, operate

app = typer.Typer(
    help="LahStats backend: who said 'lah', how often, in what mood.", no_args_is_help=True
)
app.add_typer(operate.app)
app.add_typer(local.app)

__all__ = ["app"]
