"""Runs, work items and task locks.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the store's tables."""
    op.create_table(
        "klerk_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("task", sa.String(200), nullable=False, index=True),
        sa.Column("definition_path", sa.Text(), nullable=False),
        sa.Column("definition_sha256", sa.String(64), nullable=False),
        sa.Column("input_path", sa.Text()),
        sa.Column("input_sha256", sa.String(64)),
        sa.Column("results_path", sa.Text()),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
    )
    op.create_table(
        "klerk_work_items",
        sa.Column("run_id", sa.String(40), sa.ForeignKey("klerk_runs.id"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False, index=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("subject", sa.String(20)),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_klerk_items_task_key_state", "klerk_work_items", ["task", "key", "state"])
    op.create_table(
        "klerk_task_locks",
        sa.Column("task", sa.String(200), primary_key=True),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop the store's tables."""
    op.drop_table("klerk_task_locks")
    op.drop_index("ix_klerk_items_task_key_state", "klerk_work_items")
    op.drop_table("klerk_work_items")
    op.drop_table("klerk_runs")
