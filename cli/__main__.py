"""``python -m cli ...``: the same as the ``lahstats`` console script."""

from cli import app

app()
