"""The store's tables as SQLAlchemy 2.x ORM classes (the migrations in ``migrations/`` create them).

Table names carry an ``automl_meta_`` prefix and Alembic's version table is
``automl_meta_alembic_version``, so a store can live in the same database as an Optuna storage
(which has its own ``alembic_version``, ``studies``, ``trials``...).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VERSION_TABLE = "automl_meta_alembic_version"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class TaskRow(Base):
    """A dataset the store has seen: its content fingerprint, shape, type and meta-features."""

    __tablename__ = "automl_meta_tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(255))
    task_type: Mapped[str] = mapped_column(String(32))
    n_rows: Mapped[int] = mapped_column(Integer)
    n_features: Mapped[int] = mapped_column(Integer)
    n_classes: Mapped[int | None] = mapped_column(Integer)
    metafeatures: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class SearchSpaceRow(Base):
    """A set of Optuna distributions, identified by the sha256 of its canonical JSON."""

    __tablename__ = "automl_meta_search_spaces"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signature: Mapped[str] = mapped_column(String(64), unique=True)
    distributions: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class EvaluationRow(Base):
    """One finished trial: parameters, objective values, state and duration, and the study it came from.

    A trial is identified by its study's key and its number (see :mod:`automl_meta.store.identity`);
    ``study`` is the study's name for display, ``study_hash`` the sha256 of its exact name for look-ups.
    """

    __tablename__ = "automl_meta_evaluations"
    __table_args__ = (
        UniqueConstraint("study_key", "trial_number", name="uq_automl_meta_evaluations_study_key_trial"),
        Index("ix_automl_meta_evaluations_task_space", "task_id", "search_space_id"),
        Index("ix_automl_meta_evaluations_study_hash", "study_hash"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("automl_meta_tasks.id"))
    search_space_id: Mapped[int] = mapped_column(ForeignKey("automl_meta_search_spaces.id"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    values: Mapped[list[Any] | None] = mapped_column(JSON)
    directions: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    study: Mapped[str] = mapped_column(String(512))
    study_hash: Mapped[str] = mapped_column(String(64))
    study_key: Mapped[str] = mapped_column(String(64))
    trial_number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)


class ArtifactRow(Base):
    """A file produced for a task (a model, an artifact): name, kind, sha256 and metrics."""

    __tablename__ = "automl_meta_artifacts"
    __table_args__ = (UniqueConstraint("name", "sha256", name="uq_automl_meta_artifacts_name_sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("automl_meta_tasks.id"))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
