"""issued reports, who prepared a form, a message's own headers

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 22:05:00

- reports: a "review" report is a draft until the unit returns the version it numbered and signed
  (number, date, the PDF and its signature); rows made before read as "direct" (sent as made).
- submissions: the preparer, phone and head written on the form.
- outbox: a message's own Reply-To / In-Reply-To / References.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REPORT_COLUMNS = [
    sa.Column('status', sa.String(length=20), nullable=False, server_default='direct'),
    sa.Column('number', sa.String(length=60), nullable=True),
    sa.Column('issued_on', sa.Date(), nullable=True),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('issued_pdf_blob_id', sa.Integer(), nullable=True),
    sa.Column('issued_docx_blob_id', sa.Integer(), nullable=True),
    sa.Column('issued_file_id', sa.Integer(), nullable=True),
    sa.Column('issued_via', sa.String(length=100), nullable=True),
    sa.Column('signature', sa.String(length=20), nullable=True),
    sa.Column('signer', sa.String(length=300), nullable=True),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True),
]


def upgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        for column in _REPORT_COLUMNS:
            batch_op.add_column(column)
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contact', sa.JSON(), nullable=False, server_default='{}'))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('headers', sa.JSON(), nullable=False, server_default='{}'))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('headers')
    with op.batch_alter_table('submissions', schema=None) as batch_op:
        batch_op.drop_column('contact')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        for column in reversed(_REPORT_COLUMNS):
            batch_op.drop_column(column.name)
