"""arrival and collection times; unreadable messages kept with their reason

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:10:00

Files and messages are judged by the time they reached us (IMAP INTERNALDATE, a dropped file's
time), not by when a collector got to them; both are kept. A message that cannot be parsed is
recorded with its UID, the reason and its raw bytes instead of stopping the intake.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import baocao.store.db

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('received_files', schema=None) as batch_op:
        batch_op.add_column(sa.Column('collected_at', baocao.store.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('processed_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('received_at', baocao.store.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sender', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('problem', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('raw', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('processed_messages', schema=None) as batch_op:
        batch_op.drop_column('raw')
        batch_op.drop_column('problem')
        batch_op.drop_column('sender')
        batch_op.drop_column('received_at')
    with op.batch_alter_table('received_files', schema=None) as batch_op:
        batch_op.drop_column('collected_at')
