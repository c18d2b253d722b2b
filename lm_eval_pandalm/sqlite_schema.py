"""Creating and checking the schema of this package's SQLite files (judgment cache, spend ledger).

Both files carry their schema version in SQLite's ``user_version``. Opening one either finds the current version,
refuses a newer one or a database of another program, or creates the schema once under the write lock (another
process may be creating it at the same moment).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = ["ensure_schema"]


def ensure_schema(
    conn: sqlite3.Connection,
    *,
    schema: str,
    version: int,
    table: str,
    newer: Callable[[int], Exception],
    foreign: Callable[[list[str]], Exception],
) -> None:
    """Make sure ``conn`` holds ``schema`` at ``version``, creating it in an empty database.

    Args:
        conn: An autocommit connection (``isolation_level=None``).
        schema: One ``CREATE TABLE IF NOT EXISTS`` statement.
        version: The schema version this package writes.
        table: The table that marks a database as one of ours.
        newer: The error for a file with a newer schema version (given the version found).
        foreign: The error for a database of another program (given its tables).

    >>> conn = sqlite3.connect(":memory:", isolation_level=None)
    >>> ensure_schema(conn, schema="CREATE TABLE IF NOT EXISTS t (x)", version=1, table="t",
    ...               newer=ValueError, foreign=ValueError)
    >>> conn.execute("PRAGMA user_version").fetchone()[0]
    1
    """
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found == version:
        return
    if found > version:
        raise newer(found)
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if tables and table not in tables:
        raise foreign(tables)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have created the schema between the check above and taking the write lock.
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
            conn.execute(schema)
            conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
