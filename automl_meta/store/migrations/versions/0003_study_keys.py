"""Study keys: a trial is identified by its study's key and number, no longer by the study's name.

Two studies of the same name (two in-memory runs, two storages) lost each other's trials, and MariaDB's
case- and trailing-space-insensitive default collation merged ``Study``, ``study`` and ``study ``. Each row
gets ``study_key`` (unique with ``trial_number``) and ``study_hash``, the sha256 of the exact study name, which
look-ups by name compare. Rows already stored get the hash of their name as their key, so they stay readable
and a study recorded before keeps being recognised by name. ``study`` widens to Optuna's 512 characters
(binary utf8mb4 on MySQL/MariaDB).

Downgrading fails if the store holds two studies of one name with a common trial number, or a longer name.

Revision ID: 0003
Revises: 0002
"""

import hashlib
from collections import defaultdict

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLE = "automl_meta_evaluations"


def _name_type(width: int) -> sa.types.TypeEngine:
    return sa.String(width).with_variant(mysql.VARCHAR(width, charset="utf8mb4", collation="utf8mb4_bin"),
                                         "mysql", "mariadb")


def _hash(name: str) -> str:  # a copy of identity.name_hash as of this revision
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


def _backfill(bind: sa.Connection) -> None:
    table = sa.table(_TABLE, sa.column("id"), sa.column("study"), sa.column("study_hash"), sa.column("study_key"))
    by_name: dict[str, list[int]] = defaultdict(list)
    for row_id, name in bind.execute(sa.select(table.c.id, table.c.study)):
        by_name[name].append(row_id)  # grouped in Python: exact names, whatever the database's collation
    for name, ids in by_name.items():
        digest = _hash(name)
        for start in range(0, len(ids), 500):
            bind.execute(table.update().where(table.c.id.in_(ids[start:start + 500]))
                         .values(study_hash=digest, study_key=digest))


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table(_TABLE) as batch:
        batch.add_column(sa.Column("study_hash", sa.String(64)))
        batch.add_column(sa.Column("study_key", sa.String(64)))
        if bind.dialect.name != "sqlite":  # SQLite does not enforce lengths
            batch.alter_column("study", type_=_name_type(512), existing_type=sa.String(255), existing_nullable=False)
    _backfill(bind)
    with op.batch_alter_table(_TABLE) as batch:
        batch.alter_column("study_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("study_key", existing_type=sa.String(64), nullable=False)
        batch.drop_constraint("uq_automl_meta_evaluations_study_trial", type_="unique")
        batch.create_unique_constraint("uq_automl_meta_evaluations_study_key_trial", ["study_key", "trial_number"])
        batch.create_index("ix_automl_meta_evaluations_study_hash", ["study_hash"])


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_index("ix_automl_meta_evaluations_study_hash")
        batch.drop_constraint("uq_automl_meta_evaluations_study_key_trial", type_="unique")
        batch.create_unique_constraint("uq_automl_meta_evaluations_study_trial", ["study", "trial_number"])
        batch.drop_column("study_key")
        batch.drop_column("study_hash")
        if bind.dialect.name != "sqlite":
            batch.alter_column("study", type_=sa.String(255), existing_type=_name_type(512), existing_nullable=False)
