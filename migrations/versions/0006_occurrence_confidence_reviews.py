"""occurrence confidence and reviews: every occurrence gets a calibrated confidence and
whether it counts (a human decision, else the COUNT_MIN_CONFIDENCE threshold); disputes and
confirmations are recorded, who, when, before and after

Occurrences stored before this revision keep counting (``counted`` true, ``confidence``
null) until ``lahstats recount`` rates them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 00:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("word_occurrences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confidence", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("confidence_version", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("counted", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(sa.Column("decision", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("decided_by", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_word_occurrences_decided_by_profiles"),
            "profiles",
            ["decided_by"],
            ["id"],
        )
    op.create_table(
        "occurrence_reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("occurrence_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("word", sa.String(length=32), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=True),
        sa.Column("decision_before", sa.String(length=16), nullable=True),
        sa.Column("decision_after", sa.String(length=16), nullable=True),
        sa.Column("counted_before", sa.Boolean(), nullable=False),
        sa.Column("counted_after", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["word_occurrences.id"],
            name=op.f("fk_occurrence_reviews_occurrence_id_word_occurrences"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_occurrence_reviews_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["profiles.id"], name=op.f("fk_occurrence_reviews_user_id_profiles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_occurrence_reviews")),
    )
    with op.batch_alter_table("occurrence_reviews", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_occurrence_reviews_occurrence_id"), ["occurrence_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_occurrence_reviews_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("occurrence_reviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_occurrence_reviews_session_id"))
        batch_op.drop_index(batch_op.f("ix_occurrence_reviews_occurrence_id"))
    op.drop_table("occurrence_reviews")
    with op.batch_alter_table("word_occurrences", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_word_occurrences_decided_by_profiles"), type_="foreignkey"
        )
        batch_op.drop_column("decided_at")
        batch_op.drop_column("decided_by")
        batch_op.drop_column("decision")
        batch_op.drop_column("counted")
        batch_op.drop_column("confidence_version")
        batch_op.drop_column("confidence")
