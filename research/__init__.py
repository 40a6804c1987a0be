"""Experiments behind the product's defaults (see ``research/README.md``); not the product."""
