"""live sessions: each chunk's hearing, and the chunk counts a status poll shows

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("chunks_uploaded", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("chunks_heard", sa.Integer(), server_default="0", nullable=False)
        )
    # sessions recorded before: every chunk they hold was uploaded
    op.execute(
        "UPDATE sessions SET chunks_uploaded = "
        "(SELECT count(*) FROM audio_chunks WHERE audio_chunks.session_id = sessions.id)"
    )
    op.create_table(
        "chunk_hearings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("chunk_number", sa.Integer(), nullable=False),
        sa.Column("chunk_sha256", sa.String(length=64), nullable=False),
        sa.Column("previous_number", sa.Integer(), nullable=True),
        sa.Column("previous_sha256", sa.String(length=64), nullable=True),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("hearer", sa.String(length=255), nullable=False),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=False),
        sa.Column("end_s", sa.Float(), nullable=False),
        sa.Column("segments", _json(), nullable=False),
        sa.Column("verdicts", _json(), nullable=False),
        sa.Column("room", _json(), nullable=False),
        sa.Column("voices", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("heard_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_chunk_hearings_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chunk_hearings")),
        sa.UniqueConstraint(
            "session_id", "chunk_number", name=op.f("uq_chunk_hearings_session_id_chunk_number")
        ),
    )


def downgrade() -> None:
    op.drop_table("chunk_hearings")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("chunks_heard")
        batch_op.drop_column("chunks_uploaded")
