"""Run a multi-statement SQL script inside the migration's transaction.

asyncpg prepares every statement it is given through SQLAlchemy, and a prepared statement
cannot hold several commands; the raw connection's simple-query `execute` can.
"""

from __future__ import annotations

from alembic import op


def run_script(sql: str) -> None:
    dbapi_conn = op.get_bind().connection.dbapi_connection
    dbapi_conn.run_async(lambda conn: conn.execute(sql))  # type: ignore[union-attr]
