"""speaker voices: what each was heard from, so that a reprocess reuses it

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("speaker_voices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heard_from", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("speaker_voices", schema=None) as batch_op:
        batch_op.drop_column("heard_from")
