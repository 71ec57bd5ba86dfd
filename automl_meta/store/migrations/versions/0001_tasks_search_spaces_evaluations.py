"""Tasks, search spaces and evaluations.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automl_meta_tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(255)),
        sa.Column("task_type", sa.String(32), nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("n_features", sa.Integer, nullable=False),
        sa.Column("n_classes", sa.Integer),
        sa.Column("metafeatures", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "automl_meta_search_spaces",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("signature", sa.String(64), nullable=False, unique=True),
        sa.Column("distributions", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "automl_meta_evaluations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("automl_meta_tasks.id"), nullable=False),
        sa.Column("search_space_id", sa.Integer, sa.ForeignKey("automl_meta_search_spaces.id"), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("values", sa.JSON),
        sa.Column("directions", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("duration_seconds", sa.Float),
        sa.Column("study", sa.String(255), nullable=False),
        sa.Column("trial_number", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("study", "trial_number", name="uq_automl_meta_evaluations_study_trial"),
    )
    op.create_index("ix_automl_meta_evaluations_task_space", "automl_meta_evaluations",
                    ["task_id", "search_space_id"])


def downgrade() -> None:
    op.drop_index("ix_automl_meta_evaluations_task_space", "automl_meta_evaluations")
    op.drop_table("automl_meta_evaluations")
    op.drop_table("automl_meta_search_spaces")
    op.drop_table("automl_meta_tasks")
