"""The scheduler's tables: schedule state, fire history, run-now requests, APScheduler's job store.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the scheduler's tables."""
    op.create_table(
        "klerk_schedule_state",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("definition_path", sa.Text(), nullable=False),
        sa.Column("definition_sha256", sa.String(64), nullable=False),
        sa.Column("trigger_sha256", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("paused_by", sa.String(200), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True)),
        sa.Column("pause_reason", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "klerk_schedule_fires",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("schedule", sa.String(200), nullable=False, index=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("planned_at", sa.DateTime(timezone=True)),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(40)),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer()),
        sa.Column("notified", sa.Text(), nullable=False),
    )
    op.create_table(
        "klerk_schedule_requests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("schedule", sa.String(200), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True)),
        sa.Column("fire_id", sa.Integer()),
    )
    # APScheduler's SQLAlchemyJobStore, laid out as it lays it out itself (3.x): pickled jobs by
    # id with their next run time as a UTC timestamp
    op.create_table(
        "klerk_scheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25), index=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    """Drop the scheduler's tables."""
    op.drop_table("klerk_scheduler_jobs")
    op.drop_table("klerk_schedule_requests")
    op.drop_table("klerk_schedule_fires")
    op.drop_table("klerk_schedule_state")
