"""labelled crops of camera spots and the spot heads trained from them (issue 10, item 4)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 16:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('spot_labels',
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('label', sa.String(length=8), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('labelled_by', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=128), nullable=False),
    sa.Column('incident_id', sa.String(length=128), nullable=False),
    sa.Column('camera_id', sa.String(length=128), nullable=False),
    sa.Column('zone_id', sa.String(length=128), nullable=False),
    sa.Column('scenario', sa.String(length=128), nullable=False),
    sa.Column('crop_sha256', sa.String(length=64), nullable=False),
    sa.Column('source_sha256', sa.String(length=64), nullable=False),
    sa.Column('box', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', 'label')
    )
    with op.batch_alter_table('spot_labels', schema=None) as batch_op:
        batch_op.create_index('ix_spot_labels_spot', ['camera_id', 'zone_id', 'scenario', 'at'], unique=False)
    op.create_table('spot_models',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('trained_by', sa.String(length=128), nullable=False),
    sa.Column('camera_id', sa.String(length=128), nullable=False),
    sa.Column('zone_id', sa.String(length=128), nullable=False),
    sa.Column('scenario', sa.String(length=128), nullable=False),
    sa.Column('model_hash', sa.String(length=64), nullable=False),
    sa.Column('label_counts', sa.JSON(), nullable=False),
    sa.Column('cv_precision', sa.Float(), nullable=True),
    sa.Column('cv_recall', sa.Float(), nullable=True),
    sa.Column('cv_accuracy', sa.Float(), nullable=True),
    sa.Column('ready', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('spot_models', schema=None) as batch_op:
        batch_op.create_index('ix_spot_models_spot', ['camera_id', 'zone_id', 'scenario', 'at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('spot_models', schema=None) as batch_op:
        batch_op.drop_index('ix_spot_models_spot')
    op.drop_table('spot_models')
    with op.batch_alter_table('spot_labels', schema=None) as batch_op:
        batch_op.drop_index('ix_spot_labels_spot')
    op.drop_table('spot_labels')
