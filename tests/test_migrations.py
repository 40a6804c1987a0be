"""The ORM models and the Alembic migrations describe the same schema, on Postgres and SQLite."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from migrations.runner import upgrade
from models import Base


def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    return list(diff)


def test_postgres_schema_matches_models(database_url):
    assert _diff(database_url) == []


def test_sqlite_migrations_run_and_match_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'lahstats.db'}"
    upgrade(url)
    assert _diff(url) == []
    tables = set(inspect(create_engine(url)).get_table_names())
    assert set(Base.metadata.tables) <= tables
