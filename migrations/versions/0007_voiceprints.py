"""voiceprints: speakers' voices per embedder, consented self-claims and the voiceprints built
from them, suggestions; the consent on the profile, group roles and the group's auto-claiming

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("remember_voice", sa.Boolean(), nullable=True))
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("auto_claim_voices", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=16), server_default="member", nullable=False)
        )
    # every group's creator, where still a member, is its first admin
    op.execute(
        "UPDATE group_members SET role = 'admin' WHERE user_id = "
        "(SELECT created_by FROM groups WHERE groups.id = group_members.group_id)"
    )
    _create_voice_tables()


def _create_voice_tables() -> None:
    op.create_table(
        "speaker_voices",
        sa.Column("speaker_id", sa.Uuid(), nullable=False),
        sa.Column("embedder", sa.String(length=100), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("embedding", _json(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        _fk("speaker_voices", "speaker_id", "session_speakers"),
        _fk("speaker_voices", "session_id", "sessions"),
        sa.PrimaryKeyConstraint("speaker_id", "embedder", name=op.f("pk_speaker_voices")),
    )
    op.create_index(
        op.f("ix_speaker_voices_session_id"), "speaker_voices", ["session_id"], unique=False
    )
    op.create_table(
        "voiceprint_claims",
        sa.Column("speaker_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _fk("voiceprint_claims", "speaker_id", "session_speakers"),
        _fk("voiceprint_claims", "user_id", "profiles"),
        _fk("voiceprint_claims", "session_id", "sessions"),
        sa.PrimaryKeyConstraint("speaker_id", name=op.f("pk_voiceprint_claims")),
    )
    for column in ("user_id", "session_id"):
        op.create_index(
            op.f(f"ix_voiceprint_claims_{column}"), "voiceprint_claims", [column], unique=False
        )
    op.create_table(
        "voiceprints",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("embedder", sa.String(length=100), nullable=False),
        sa.Column("embedding", _json(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("claims", _json(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _fk("voiceprints", "user_id", "profiles"),
        sa.PrimaryKeyConstraint("user_id", "embedder", name=op.f("pk_voiceprints")),
    )
    op.create_table(
        "speaker_suggestions",
        sa.Column("speaker_id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("embedder", sa.String(length=100), nullable=False),
        sa.Column("auto_claimed", sa.Boolean(), server_default=sa.false(), nullable=False),
        _fk("speaker_suggestions", "speaker_id", "session_speakers"),
        _fk("speaker_suggestions", "session_id", "sessions"),
        _fk("speaker_suggestions", "user_id", "profiles"),
        sa.PrimaryKeyConstraint("speaker_id", name=op.f("pk_speaker_suggestions")),
    )
    op.create_index(
        op.f("ix_speaker_suggestions_session_id"),
        "speaker_suggestions",
        ["session_id"],
        unique=False,
    )


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def downgrade() -> None:
    for table in ("speaker_suggestions", "voiceprints", "voiceprint_claims", "speaker_voices"):
        op.drop_table(table)
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_column("role")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_column("auto_claim_voices")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_column("remember_voice")
