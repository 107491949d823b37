"""evidence custody: legal holds, purged evidence files, and the access log searched by person and by case

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 09:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

IN_FORCE = "released_at IS NULL"


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('holds',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('incident_id', sa.String(length=128), nullable=False),
    sa.Column('held_by', sa.String(length=128), nullable=False),
    sa.Column('held_at', sa.DateTime(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('released_by', sa.String(length=128), nullable=True),
    sa.Column('released_at', sa.DateTime(), nullable=True),
    sa.Column('release_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index('ix_holds_incident', ['incident_id', 'held_at'], unique=False)
        batch_op.create_index('ux_holds_in_force', ['incident_id'], unique=True,
                              sqlite_where=sa.text(IN_FORCE), postgresql_where=sa.text(IN_FORCE))

    op.create_table('purged_files',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('purged_at', sa.DateTime(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('sha256')
    )
    with op.batch_alter_table('purged_files', schema=None) as batch_op:
        batch_op.create_index('ix_purged_files_deleted', ['deleted_at'], unique=False)

    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.create_index('ix_access_log_person', ['person_id', 'at'], unique=False)
        batch_op.create_index('ix_access_log_incident', ['incident_id', 'at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_index('ix_access_log_incident')
        batch_op.drop_index('ix_access_log_person')

    with op.batch_alter_table('purged_files', schema=None) as batch_op:
        batch_op.drop_index('ix_purged_files_deleted')

    op.drop_table('purged_files')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ux_holds_in_force')
        batch_op.drop_index('ix_holds_incident')

    op.drop_table('holds')
