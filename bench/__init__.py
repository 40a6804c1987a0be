"""Benchmarks and quality evaluation (issue 4): ``python -m bench SUBCOMMAND`` or
``lahstats bench SUBCOMMAND``; each prints a table and writes JSON under ``bench/results/``.

``bench.main(argv)`` is the one entry point; it imports the subcommand's module only when
that subcommand runs, so importing ``bench`` stays cheap.
"""

from bench.commands import main

__all__ = ["main"]
