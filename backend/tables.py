"""The tasks table described in SQLAlchemy Core: the schema in Python.

The schema itself is created by backend/migrations; a test checks that the
migrated database and these definitions agree. backend/queries.py writes its
SQL as text against the same columns (docs/performance.md says why).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("user_id", sa.Text(), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("description", sa.String(1000), nullable=True),
    sa.Column("completed", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
