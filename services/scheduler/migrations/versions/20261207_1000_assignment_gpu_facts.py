"""Each assignment's GPUs keep their model name and memory, as the node reported them at placement.

Rows placed before this revision are filled from the node projection's current hardware report
(matched by GPU UUID); a GPU the node no longer reports stays null.

Revision ID: scheduler_0003
Revises: scheduler_0002
Create Date: 2026-12-07 10:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scheduler_0003"
down_revision: str | None = "scheduler_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "scheduler"

# The CASE keeps a hardware report without a `gpus` array (a node that never reported) from
# failing jsonb_array_elements: it simply matches nothing.
BACKFILL = """
UPDATE scheduler.assignment_gpus AS ag
SET gpu_name = g.gpu ->> 'name', gpu_memory_mb = (g.gpu ->> 'memory_mb')::bigint
FROM scheduler.nodes AS n
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(n.hardware -> 'gpus') = 'array' THEN n.hardware -> 'gpus' ELSE '[]'::jsonb END
) AS g(gpu)
WHERE n.id = ag.node_id AND g.gpu ->> 'uuid' = ag.gpu_uuid AND ag.gpu_name IS NULL
"""


def upgrade() -> None:
    op.add_column("assignment_gpus", sa.Column("gpu_name", sa.Text(), nullable=True), schema=S)
    op.add_column("assignment_gpus", sa.Column("gpu_memory_mb", sa.BIGINT(), nullable=True), schema=S)
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_column("assignment_gpus", "gpu_memory_mb", schema=S)
    op.drop_column("assignment_gpus", "gpu_name", schema=S)
