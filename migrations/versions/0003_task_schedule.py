"""periodic tasks: the periods and days of a task's reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 19:45:00

A task such as Huế's "Định kỳ hằng năm" whose product asks for a report in every period (quý I
before 10/3, 6 tháng before 10/6, ...) keeps those periods and days ("Q1:10/3 H1:10/6 9M:10/9 Y:10/12").
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('schedule', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('schedule')
