"""word occurrences: every count becomes evidence rows

Counts were stored twice (per speaker, and again per claiming user); both are now derived from
``word_occurrences`` at read time. Segments gain the recognised words and the verifier's
verdicts, so a recount can re-run detection without ASR.

Existing counts are kept: each ``speaker_word_counts`` row becomes that many occurrences with
source ``migrated`` (no times, no clip). Downgrading rebuilds both count tables from the
occurrences (``word_counts`` for self-claimed speakers only, as the claim route wrote them).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 10:05:00
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

occurrences = sa.table(
    "word_occurrences",
    sa.column("id", sa.Uuid()),
    sa.column("session_id", sa.Uuid()),
    sa.column("speaker_id", sa.Uuid()),
    sa.column("word", sa.String()),
    sa.column("heard", sa.Text()),
    sa.column("source", sa.String()),
    sa.column("rule", sa.Text()),
    sa.column("dictionary_version", sa.String()),
)
speakers = sa.table(
    "session_speakers",
    sa.column("id", sa.Uuid()),
    sa.column("session_id", sa.Uuid()),
    sa.column("claim_type", sa.String()),
    sa.column("attributed_to_user_id", sa.Uuid()),
)
speaker_counts = sa.table(
    "speaker_word_counts",
    sa.column("id", sa.Uuid()),
    sa.column("speaker_id", sa.Uuid()),
    sa.column("word", sa.String()),
    sa.column("count", sa.Integer()),
)
user_counts = sa.table(
    "word_counts",
    sa.column("id", sa.Uuid()),
    sa.column("session_id", sa.Uuid()),
    sa.column("speaker_id", sa.Uuid()),
    sa.column("user_id", sa.Uuid()),
    sa.column("group_id", sa.Uuid()),
    sa.column("word", sa.String()),
    sa.column("count", sa.Integer()),
    sa.column("detected_at", sa.DateTime(timezone=True)),
)
sessions = sa.table("sessions", sa.column("id", sa.Uuid()), sa.column("group_id", sa.Uuid()))


def upgrade() -> None:
    op.create_table(
        "word_occurrences",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("speaker_id", sa.Uuid(), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=True),
        sa.Column("word", sa.String(length=32), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=True),
        sa.Column("end_s", sa.Float(), nullable=True),
        sa.Column("heard", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("dictionary_version", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("clip_key", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_word_occurrences_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_word_occurrences_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["speaker_id"],
            ["session_speakers.id"],
            name=op.f("fk_word_occurrences_speaker_id_session_speakers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_word_occurrences")),
    )
    with op.batch_alter_table("word_occurrences", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_word_occurrences_session_id"), ["session_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_word_occurrences_speaker_id"), ["speaker_id"], unique=False
        )

    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("words", JSON, nullable=True))
        batch_op.add_column(sa.Column("verdicts", JSON, nullable=True))
    op.execute(
        sa.table("segments", sa.column("words", JSON), sa.column("verdicts", JSON))
        .update()
        .values(words=[], verdicts=[])
    )
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.alter_column("words", existing_type=JSON, nullable=False)
        batch_op.alter_column("verdicts", existing_type=JSON, nullable=False)

    _counts_to_occurrences()
    with op.batch_alter_table("word_counts", schema=None) as batch_op:
        batch_op.drop_index("ix_word_counts_group_user")
    op.drop_table("word_counts")
    op.drop_table("speaker_word_counts")


def _counts_to_occurrences() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            speaker_counts.c.speaker_id,
            speakers.c.session_id,
            speaker_counts.c.word,
            speaker_counts.c.count,
        ).join(speakers, speakers.c.id == speaker_counts.c.speaker_id)
    ).all()
    migrated = [
        {
            "id": uuid.uuid4(),
            "session_id": session_id,
            "speaker_id": speaker_id,
            "word": word,
            "heard": "",
            "source": "migrated",
            "rule": "",
            "dictionary_version": "",
        }
        for speaker_id, session_id, word, count in rows
        for _ in range(count)
    ]
    if migrated:
        bind.execute(occurrences.insert(), migrated)


def downgrade() -> None:
    op.create_table(
        "speaker_word_counts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("speaker_id", sa.Uuid(), nullable=False),
        sa.Column("word", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["speaker_id"],
            ["session_speakers.id"],
            name=op.f("fk_speaker_word_counts_speaker_id_session_speakers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_speaker_word_counts")),
        sa.UniqueConstraint(
            "speaker_id", "word", name=op.f("uq_speaker_word_counts_speaker_id_word")
        ),
    )
    op.create_table(
        "word_counts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("speaker_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("word", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_word_counts_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_word_counts_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["speaker_id"],
            ["session_speakers.id"],
            name=op.f("fk_word_counts_speaker_id_session_speakers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["profiles.id"], name=op.f("fk_word_counts_user_id_profiles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_word_counts")),
        sa.UniqueConstraint("speaker_id", "word", name=op.f("uq_word_counts_speaker_id_word")),
    )
    with op.batch_alter_table("word_counts", schema=None) as batch_op:
        batch_op.create_index("ix_word_counts_group_user", ["group_id", "user_id"], unique=False)

    _occurrences_to_counts()
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_column("verdicts")
        batch_op.drop_column("words")
    with op.batch_alter_table("word_occurrences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_word_occurrences_speaker_id"))
        batch_op.drop_index(batch_op.f("ix_word_occurrences_session_id"))
    op.drop_table("word_occurrences")


def _occurrences_to_counts() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            occurrences.c.speaker_id,
            occurrences.c.word,
            sa.func.count(),
            speakers.c.session_id,
            speakers.c.claim_type,
            speakers.c.attributed_to_user_id,
            sessions.c.group_id,
        )
        .join(speakers, speakers.c.id == occurrences.c.speaker_id)
        .join(sessions, sessions.c.id == speakers.c.session_id)
        .group_by(
            occurrences.c.speaker_id,
            occurrences.c.word,
            speakers.c.session_id,
            speakers.c.claim_type,
            speakers.c.attributed_to_user_id,
            sessions.c.group_id,
        )
    ).all()
    per_speaker = [
        {"id": uuid.uuid4(), "speaker_id": speaker_id, "word": word, "count": n}
        for speaker_id, word, n, *_ in rows
    ]
    now = datetime.now(UTC)
    per_user = [
        {
            "id": uuid.uuid4(),
            "session_id": session_id,
            "speaker_id": speaker_id,
            "user_id": user_id,
            "group_id": group_id,
            "word": word,
            "count": n,
            "detected_at": now,
        }
        for speaker_id, word, n, session_id, claim_type, user_id, group_id in rows
        if claim_type in ("self", "SELF") and user_id is not None
    ]
    if per_speaker:
        bind.execute(speaker_counts.insert(), per_speaker)
    if per_user:
        bind.execute(user_counts.insert(), per_user)
