"""A persistent judgment cache (SQLite), and a judge wrapper that consults it before judging.

Judging is the expensive part of an evaluation: a model forward pass or a paid API call per pair. The cache keys
every verdict on the judge's ``fingerprint`` (everything that determines its output) and the item's order-sensitive
content ``key``, so a verdict is reused exactly when it would be recomputed identically.

Which verdicts are cached:
    ``OK``, ``UNPARSED`` and ``OVER_CONTEXT`` verdicts are stored: they are deterministic outcomes of the same judge on
    the same input, and they were already paid for. ``ERROR`` verdicts are *not* stored: an exception or API failure
    is usually transient, so the next run should try again.

Concurrency and crashes:
    The database runs in WAL mode with a busy timeout, so several processes (e.g. data-parallel workers) can share
    one file, each through its own connection; readers never block the writer. Each batch of verdicts is written in
    one ``BEGIN IMMEDIATE`` transaction, retried while another process holds the write lock, and committed before
    the judge moves on, so a crash loses at most the batch in flight and a re-run judges only what is missing. WAL
    needs a local filesystem (not NFS).

Settings come from the environment (the CLI maps ``--cache PATH`` / ``--no-cache`` onto them):
    ``PANDALM_CACHE_PATH`` (the file), else ``PANDALM_CACHE_DIR`` (its folder), else
    ``$XDG_CACHE_HOME/lm_eval_pandalm``, else ``~/.cache/lm_eval_pandalm``, with the file ``judgments.sqlite``;
    ``PANDALM_NO_CACHE=1`` turns caching off. See :func:`default_cache_path`, :func:`cache_enabled` and
    :func:`maybe_cached`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from ..judge import Judge, check_verdicts
from ..types import Label, PairItem, Verdict, VerdictState

__all__ = [
    "CACHEABLE_STATES",
    "SCHEMA_VERSION",
    "CachedJudge",
    "JudgmentCache",
    "cache_enabled",
    "cached",
    "default_cache_path",
    "maybe_cached",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Version of the table layout, stored in ``PRAGMA user_version``."""

CACHEABLE_STATES = frozenset({VerdictState.OK, VerdictState.UNPARSED, VerdictState.OVER_CONTEXT})
"""Verdict states worth keeping: deterministic and already paid for. ``ERROR`` is transient and is retried."""

CACHE_FILENAME = "judgments.sqlite"

_DEFAULT_BUSY_TIMEOUT_S = 60.0
# SQLite's limit on host parameters is 999 in old builds; stay well below it when looking keys up.
_LOOKUP_CHUNK = 500

_COLUMNS = (
    "fingerprint",
    "item_key",
    "judge_id",
    "state",
    "p_first",
    "p_second",
    "p_tie",
    "winner",
    "generated_winner",
    "raw",
    "reason",
    "reference",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_s",
    "created_at",
)
# The verdict fields, in the order they follow fingerprint and item_key in _COLUMNS.
_VERDICT_COLUMNS = _COLUMNS[2:-1]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    fingerprint TEXT NOT NULL,
    item_key TEXT NOT NULL,
    judge_id TEXT NOT NULL,
    state TEXT NOT NULL,
    p_first REAL,
    p_second REAL,
    p_tie REAL,
    winner TEXT,
    generated_winner TEXT,
    raw TEXT,
    reason TEXT,
    reference TEXT,
    error TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cost_usd REAL,
    latency_s REAL,
    created_at REAL NOT NULL,
    PRIMARY KEY (fingerprint, item_key)
)
"""

_INSERT = f"INSERT OR REPLACE INTO judgments ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def _verdict_to_row(fingerprint: str, key: str, verdict: Verdict, created_at: float) -> tuple[Any, ...]:
    values: list[Any] = [fingerprint, key]
    for name in _VERDICT_COLUMNS:
        value = getattr(verdict, name)
        values.append(value.value if isinstance(value, (Label, VerdictState)) else value)
    values.append(created_at)
    return tuple(values)


def _row_to_verdict(row: Sequence[Any]) -> Verdict:
    data = dict(zip(_VERDICT_COLUMNS, row, strict=True))
    data["source"] = "cache"
    return Verdict.from_dict(data)


class JudgmentCache:
    """Verdicts stored in a SQLite file, keyed by judge fingerprint and item key.

    Each instance holds one connection, opened by the process that uses it (an instance that crosses a ``fork``
    opens a fresh connection in the child). Several processes may use the same file at once.

    Args:
        path: The database file; its parent folders are created. ``":memory:"`` gives a private in-memory cache.
        busy_timeout_s: How long to wait for another process's write lock before giving up.

    Raises:
        RuntimeError: The file was written by a newer version of this package (unknown schema version).
    """

    def __init__(self, path: str | os.PathLike[str], busy_timeout_s: float = _DEFAULT_BUSY_TIMEOUT_S) -> None:
        self.path = path if path == ":memory:" else Path(path).expanduser()
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        # Connections inherited across fork are kept referenced but never used or closed: closing them in the child
        # could checkpoint or delete the parent's WAL files.
        self._inherited: list[sqlite3.Connection] = []
        if isinstance(self.path, Path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection()

    # -- connection ------------------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid != os.getpid():
            self._inherited.append(self._conn)
            self._conn = None
            self._pid = os.getpid()
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; writes use explicit BEGIN IMMEDIATE ... COMMIT.
        conn = sqlite3.connect(
            str(self.path), timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            conn.execute("PRAGMA synchronous = NORMAL")
            self._retry_busy(lambda: self._migrate(conn))
        except BaseException:
            conn.close()
            raise
        logger.debug("opened judgment cache %s", self.path)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"judgment cache {self.path} has schema version {version}, newer than this package's "
                f"{SCHEMA_VERSION}; upgrade lm_eval_pandalm or point PANDALM_CACHE_PATH at another file"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have created the schema between the check above and taking the write lock.
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                conn.execute(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _retry_busy(self, operation: Any) -> Any:
        """Run ``operation``, retrying with backoff while SQLite reports the database busy or locked.

        The busy timeout already makes SQLite wait for most locks, but some conflicts (e.g. upgrading a WAL read
        transaction, or switching to WAL mode while another connection opens the file) return ``SQLITE_BUSY`` at
        once, so the retry loop is needed for multi-process safety.
        """
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.005
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
                logger.debug("judgment cache %s busy (%s); retrying in %.3f s", self.path, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    # -- reading ---------------------------------------------------------------------------------------------------

    def get_many(self, fingerprint: str, keys: Iterable[str]) -> dict[str, Verdict]:
        """Cached verdicts of the judge ``fingerprint`` for ``keys``.

        Returns:
            ``{key: verdict}`` for the keys found (missing keys are absent), each verdict with ``source="cache"``.
        """
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Verdict] = {}
        columns = ", ".join(("item_key", *_VERDICT_COLUMNS))
        with self._lock:
            conn = self._connection()
            for start in range(0, len(wanted), _LOOKUP_CHUNK):
                chunk = wanted[start : start + _LOOKUP_CHUNK]
                query = (
                    f"SELECT {columns} FROM judgments "
                    f"WHERE fingerprint = ? AND item_key IN ({', '.join('?' * len(chunk))})"
                )
                rows = self._retry_busy(lambda q=query, c=chunk: conn.execute(q, (fingerprint, *c)).fetchall())
                for row in rows:
                    found[row[0]] = _row_to_verdict(row[1:])
        return found

    def count(self, fingerprint: str | None = None) -> int:
        """Number of stored verdicts, of one judge fingerprint or of all."""
        query = "SELECT COUNT(*) FROM judgments"
        params: tuple[str, ...] = ()
        if fingerprint is not None:
            query, params = f"{query} WHERE fingerprint = ?", (fingerprint,)
        with self._lock:
            conn = self._connection()
            return self._retry_busy(lambda: conn.execute(query, params).fetchone()[0])

    def __len__(self) -> int:
        return self.count()

    # -- writing ---------------------------------------------------------------------------------------------------

    def put_many(self, fingerprint: str, entries: Iterable[tuple[str, Verdict]]) -> int:
        """Store verdicts of the judge ``fingerprint`` in one transaction, replacing any stored under the same keys.

        Verdicts whose state is not in :data:`CACHEABLE_STATES` (i.e. ``ERROR``) are skipped. The transaction is
        committed before this returns.

        Returns:
            How many verdicts were stored.
        """
        now = time.time()
        rows = [
            _verdict_to_row(fingerprint, key, verdict, now)
            for key, verdict in entries
            if verdict.state in CACHEABLE_STATES
        ]
        if not rows:
            return 0
        with self._lock:
            conn = self._connection()
            self._retry_busy(lambda: self._write(conn, rows))
        return len(rows)

    @staticmethod
    def _write(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- lifetime --------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; using the cache afterwards reopens it."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> JudgmentCache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JudgmentCache({str(self.path)!r})"


class CachedJudge:
    """A judge that answers from a :class:`JudgmentCache` where it can and asks its inner judge for the rest.

    It has the inner judge's ``judge_id`` and ``fingerprint``: caching does not change what the verdicts are.

    For each batch, every item is looked up under ``(inner.fingerprint, item.key)``:

    * an exact hit is served with ``source="cache"``;
    * otherwise, if the swapped pair ``item.swapped().key`` is cached, that verdict is served ``.flipped()`` with
      ``source="cache-flipped"`` -- *unless the same batch also asks for the swapped orientation of the pair*, as
      :class:`~lm_eval_pandalm.wrappers.both_orders.BothOrdersJudge` does. Serving one orientation as the flip of
      the other would then make the two orders agree by construction and fake positional consistency, so for such
      pairs only exact-order hits count;
    * the remaining items (misses) are deduplicated by key and sent to the inner judge in one call; its verdicts are
      stored (see :data:`CACHEABLE_STATES`) before this call returns.

    Verdicts come back in input order. If the inner judge raises, nothing of that batch is stored and the exception
    propagates; earlier batches are already committed.

    Args:
        inner: The judge to ask on misses.
        cache: A :class:`JudgmentCache`, or the path of its file (the wrapper then owns and closes it).

    Attributes:
        hits: Items served from an exact-order cache entry (cumulative).
        flipped_hits: Items served from the swapped pair's entry, flipped (cumulative).
        misses: Distinct items sent to the inner judge (cumulative); in-batch duplicates of a miss count once.
    """

    def __init__(self, inner: Judge, cache: JudgmentCache | str | os.PathLike[str]) -> None:
        self.inner = inner
        self.judge_id = inner.judge_id
        self._owns_cache = not isinstance(cache, JudgmentCache)
        self.cache = cache if isinstance(cache, JudgmentCache) else JudgmentCache(cache)
        self.hits = 0
        self.flipped_hits = 0
        self.misses = 0

    @property
    def fingerprint(self) -> str:
        """The inner judge's fingerprint."""
        return self.inner.fingerprint

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """Judge every item, from the cache where possible; one verdict per item, same order."""
        items = list(items)
        if not items:
            return []
        fingerprint = self.inner.fingerprint
        keys = [item.key for item in items]
        swapped_keys = [item.swapped().key for item in items]
        requested = set(keys)
        # A swapped entry may serve an item only when the batch does not ask for that orientation itself.
        flip_candidates = {sk for sk in swapped_keys if sk not in requested}
        found = self.cache.get_many(fingerprint, [*requested, *flip_candidates])

        results: list[Verdict | None] = [None] * len(items)
        pending: dict[str, list[int]] = {}
        hits = flipped_hits = 0
        for i, (key, swapped_key) in enumerate(zip(keys, swapped_keys, strict=True)):
            if key in found:
                results[i] = found[key]
                hits += 1
            elif swapped_key in flip_candidates and swapped_key in found:
                results[i] = replace(found[swapped_key].flipped(), source="cache-flipped")
                flipped_hits += 1
            else:
                pending.setdefault(key, []).append(i)

        if pending:
            to_judge = [items[positions[0]] for positions in pending.values()]
            fresh = check_verdicts(self.inner, to_judge, self.inner(to_judge))
            stored = self.cache.put_many(fingerprint, zip(pending, fresh, strict=True))
            for positions, verdict in zip(pending.values(), fresh, strict=True):
                for i in positions:
                    results[i] = verdict
            logger.debug("stored %d of %d fresh verdicts in %s", stored, len(fresh), self.cache)

        self.hits += hits
        self.flipped_hits += flipped_hits
        self.misses += len(pending)
        logger.info(
            "judgment cache %s: %d items, %d hits, %d flipped hits, %d judged by %s",
            self.cache.path,
            len(items),
            hits,
            flipped_hits,
            len(pending),
            self.judge_id,
        )
        # Every position was filled above: by a hit, a flipped hit, or the fresh verdict of its key.
        return cast(list[Verdict], results)

    def close(self) -> None:
        """Close the cache if this wrapper opened it."""
        if self._owns_cache:
            self.cache.close()

    def __enter__(self) -> CachedJudge:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CachedJudge({self.inner!r}, {self.cache!r})"


# -- settings --------------------------------------------------------------------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def default_cache_path() -> Path:
    """Where the judgment cache lives unless told otherwise.

    ``$PANDALM_CACHE_PATH`` if set; else ``judgments.sqlite`` in ``$PANDALM_CACHE_DIR``, or in
    ``$XDG_CACHE_HOME/lm_eval_pandalm``, or in ``~/.cache/lm_eval_pandalm``. Folders are created when the cache is
    opened, not here.
    """
    explicit = _env("PANDALM_CACHE_PATH")
    if explicit is not None:
        return Path(explicit).expanduser()
    folder = _env("PANDALM_CACHE_DIR")
    if folder is not None:
        return Path(folder).expanduser() / CACHE_FILENAME
    xdg = _env("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg is not None else Path.home() / ".cache"
    return base / "lm_eval_pandalm" / CACHE_FILENAME


def cache_enabled() -> bool:
    """False when ``$PANDALM_NO_CACHE`` is ``1``, ``true``, ``yes`` or ``on`` (any case); True when it is unset,
    empty, ``0``, ``false``, ``no`` or ``off``.

    Raises:
        ValueError: ``$PANDALM_NO_CACHE`` has any other value.
    """
    value = os.environ.get("PANDALM_NO_CACHE", "").strip().lower()
    if value in _TRUE:
        return False
    if value in _FALSE:
        return True
    raise ValueError(
        f"PANDALM_NO_CACHE={value!r} is not understood; use one of {sorted(_TRUE)} to disable the judgment cache "
        f"or one of {sorted(_FALSE - {''})} (or leave it unset) to keep it"
    )


def cached(inner: Judge, path: str | os.PathLike[str] | None = None) -> CachedJudge:
    """Wrap ``inner`` with a judgment cache at ``path`` (default: :func:`default_cache_path`)."""
    return CachedJudge(inner, path if path is not None else default_cache_path())


def maybe_cached(inner: Judge, path: str | os.PathLike[str] | None = None, enabled: bool | None = None) -> Judge:
    """``inner`` wrapped in a judgment cache, or ``inner`` itself when caching is off.

    Args:
        inner: The judge.
        path: The cache file; ``None`` means :func:`default_cache_path`.
        enabled: Whether to cache; ``None`` means :func:`cache_enabled` (the environment decides).
    """
    if enabled is None:
        enabled = cache_enabled()
    if not enabled:
        logger.info("judgment cache disabled; every item goes to %s", inner.judge_id)
        return inner
    return cached(inner, path)
