"""A persistent judgment cache (SQLite), and a judge wrapper that consults it before judging.

Judging is the expensive part of an evaluation: a model forward pass or a paid API call per pair. The cache keys
every verdict on the judge's ``fingerprint`` (everything that determines its output) and the item's order-sensitive
content ``key``, so a verdict is reused exactly when it would be recomputed identically.

Which verdicts are cached:
    ``OK``, ``UNPARSED`` and ``OVER_CONTEXT`` verdicts are stored: they are deterministic outcomes of the same judge on
    the same input, and they were already paid for. ``ERROR`` verdicts are *not* stored: an exception or API failure
    is usually transient, so the next run should try again.

Order:
    A verdict is served only for the order it was judged in. A swapped pair's verdict is served flipped only when the
    judge declares itself ``order_invariant`` (e.g. a both-orders combination, human labels): for an order-sensitive
    judge the flip of its (2, 1) verdict is not what it would say about (1, 2), and serving it would make the
    verdicts depend on what happened to be cached.

Concurrency and crashes:
    The database runs in WAL mode with a busy timeout, so several processes (e.g. data-parallel workers) can share
    one file, each through its own connection; readers never block the writer. :class:`CachedJudge` sends the items
    it must judge to the inner judge in chunks of at most ``chunk_size`` and commits each chunk's verdicts in one
    ``BEGIN IMMEDIATE`` transaction before the next chunk starts, so a kill loses at most the chunk in flight and a
    re-run judges only what is missing. A judge that pays per item (an API judge) reports each verdict as it arrives
    through ``judge_incrementally(items, on_verdict)``; each is then committed at once, so a kill loses only the
    answers still in flight. A write that fails (read-only file, lock held past the timeout, disk full)
    does not lose the verdicts: they are still returned, further writes are skipped, and :attr:`CachedJudge.write_error`
    says what happened and how to fix it. Closing the cache checkpoints the write-ahead log into the ``.sqlite`` file,
    which then holds everything on its own. WAL needs a local filesystem (not NFS).

Settings come from the environment (the CLI maps ``--cache PATH`` / ``--no-cache`` onto them):
    ``PANDALM_CACHE_PATH`` (the file), else ``PANDALM_CACHE_DIR`` (its folder), else
    ``$XDG_CACHE_HOME/lm_eval_pandalm``, else ``~/.cache/lm_eval_pandalm``, with the file ``judgments.sqlite``;
    ``PANDALM_NO_CACHE=1`` turns caching off; ``PANDALM_CHUNK_SIZE`` sets the default chunk size. See
    :func:`default_cache_path`, :func:`cache_enabled` and :func:`maybe_cached`.
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from ..errors import PandaLMError
from ..judge import Judge, check_verdicts, is_order_invariant
from ..sqlite_schema import ensure_schema
from ..types import Label, PairItem, Verdict, VerdictState

__all__ = [
    "CACHEABLE_STATES",
    "DEFAULT_CHUNK_SIZE",
    "SCHEMA_VERSION",
    "CacheError",
    "CachedJudge",
    "JudgmentCache",
    "cache_enabled",
    "cache_report",
    "cache_write_errors",
    "cached",
    "chunk_size_setting",
    "close_all",
    "default_cache_path",
    "maybe_cached",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""Version of the table layout, stored in ``PRAGMA user_version``."""

CACHEABLE_STATES = frozenset({VerdictState.OK, VerdictState.UNPARSED, VerdictState.OVER_CONTEXT})
"""Verdict states worth keeping: deterministic and already paid for. ``ERROR`` and ``OVER_BUDGET`` are transient and
are tried again."""

CACHE_FILENAME = "judgments.sqlite"

DEFAULT_CHUNK_SIZE = 256
"""Most items :class:`CachedJudge` hands the inner judge at once (and commits together); ``PANDALM_CHUNK_SIZE``."""

_CACHE_FIX = "delete or move the file, point --cache (or PANDALM_CACHE_PATH) at another file, or use --no-cache"

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


class CacheError(PandaLMError):
    """The judgment cache file cannot be used: not a database, malformed, newer schema, unwritable, locked."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path
        """The cache file."""


def _busy_timeout_setting() -> float:
    value = os.environ.get("PANDALM_CACHE_TIMEOUT", "").strip()
    if not value:
        return _DEFAULT_BUSY_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"PANDALM_CACHE_TIMEOUT={value!r} must be a number of seconds > 0 (lock wait of the cache)")
    return seconds


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
        busy_timeout_s: How long to wait for another process's write lock before giving up; ``None`` reads
            ``PANDALM_CACHE_TIMEOUT`` (seconds, default 60).

    Raises:
        CacheError: The file is not a judgment cache (not a database, malformed, another program's database), was
            written by a newer version of this package, or cannot be opened for writing.
    """

    def __init__(self, path: str | os.PathLike[str], busy_timeout_s: float | None = None) -> None:
        self.path = path if path == ":memory:" else Path(path).expanduser()
        self.busy_timeout_s = _busy_timeout_setting() if busy_timeout_s is None else busy_timeout_s
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
        try:
            # isolation_level=None: no implicit transactions; writes use explicit BEGIN IMMEDIATE ... COMMIT.
            conn = sqlite3.connect(
                str(self.path), timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._unusable(exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            conn.execute("PRAGMA synchronous = NORMAL")
            self._retry_busy(lambda: self._migrate(conn))
        except sqlite3.Error as exc:
            conn.close()
            raise self._unusable(exc) from exc
        except BaseException:
            conn.close()
            raise
        logger.debug("opened judgment cache %s", self.path)
        return conn

    def _unusable(self, exc: sqlite3.Error) -> CacheError:
        """A :class:`CacheError` naming the file, what SQLite said and the fix."""
        message = str(exc)
        if "not a database" in message or "malformed" in message:
            what = "is not a usable SQLite database"
        elif "readonly" in message or "read-only" in message:
            what = "cannot be written"
        elif "unable to open" in message:
            what = "cannot be opened (is the path a folder, or its folder not writable?)"
        elif "locked" in message or "busy" in message:
            what = f"is locked by another process for more than {self.busy_timeout_s:g} s"
        else:
            what = "cannot be used"
        return CacheError(f"judgment cache {self.path} {what} ({message}); {_CACHE_FIX}", path=str(self.path))

    def _migrate(self, conn: sqlite3.Connection) -> None:
        ensure_schema(
            conn,
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            table="judgments",
            newer=lambda found: CacheError(
                f"judgment cache {self.path} has schema version {found}, newer than this package's "
                f"{SCHEMA_VERSION}; upgrade lm_eval_pandalm, or point --cache (or PANDALM_CACHE_PATH) at another file",
                path=str(self.path),
            ),
            foreign=lambda tables: CacheError(
                f"{self.path} is an SQLite database of something else (tables: {', '.join(tables)}), not a judgment "
                f"cache; {_CACHE_FIX}",
                path=str(self.path),
            ),
        )

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
                try:
                    rows = self._retry_busy(lambda q=query, c=chunk: conn.execute(q, (fingerprint, *c)).fetchall())
                except sqlite3.Error as exc:
                    raise self._unusable(exc) from exc
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

        Raises:
            sqlite3.Error: The write failed (read-only file, lock held past the timeout, disk full); nothing of
                this call is stored.
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
        """Checkpoint the write-ahead log into the database file and close the connection.

        Afterwards the ``.sqlite`` file alone holds every verdict. Using the cache again reopens it.
        """
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:  # another process still reading: it checkpoints when it closes
                    logger.debug("judgment cache %s: checkpoint skipped (%s)", self.path, exc)
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

    It has the inner judge's ``judge_id``, ``fingerprint`` and ``order_invariant``: caching does not change what the
    verdicts are. The verdict of an item is the same whatever the chunk size, whatever else is in the batch and
    whatever is already cached.

    For each batch, every item is looked up under ``(inner.fingerprint, item.key)``:

    * an exact hit is served with ``source="cache"``;
    * otherwise, only if the inner judge is order-invariant (see :func:`~lm_eval_pandalm.judge.is_order_invariant`)
      and the batch does not also ask for the other orientation, the swapped pair's entry is served ``.flipped()``
      with ``source="cache-flipped"``;
    * the remaining items (misses) are deduplicated by key and sent to the inner judge in chunks of at most
      ``chunk_size``, each chunk's verdicts stored (see :data:`CACHEABLE_STATES`) before the next chunk starts.

    Verdicts come back in input order. If the inner judge raises, the chunks already judged stay stored and the
    exception propagates. If storing fails, the verdicts are still returned, later chunks are not stored either, and
    :attr:`write_error` holds a :class:`CacheError` naming the file and the fix (also logged once).

    Args:
        inner: The judge to ask on misses.
        cache: A :class:`JudgmentCache`, or the path of its file (the wrapper then owns and closes it).
        chunk_size: Most items per inner call and per commit; ``None`` reads ``PANDALM_CHUNK_SIZE`` (default
            :data:`DEFAULT_CHUNK_SIZE`).
        show_progress: Show a progress bar over the items to judge when there is more than one chunk.

    Attributes:
        hits: Items served from an exact-order cache entry (cumulative).
        flipped_hits: Items served from the swapped pair's entry, flipped (cumulative; order-invariant judges only).
        misses: Distinct items sent to the inner judge (cumulative); in-batch duplicates of a miss count once.
        stored: Verdicts written to the cache by this wrapper (cumulative).
        write_error: Why storing failed, or ``None``.
    """

    def __init__(
        self,
        inner: Judge,
        cache: JudgmentCache | str | os.PathLike[str],
        *,
        chunk_size: int | None = None,
        show_progress: bool = True,
    ) -> None:
        self.inner = inner
        self.judge_id = inner.judge_id
        self.chunk_size = chunk_size_setting() if chunk_size is None else chunk_size
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size}")
        self.show_progress = show_progress
        self._owns_cache = not isinstance(cache, JudgmentCache)
        self.cache = cache if isinstance(cache, JudgmentCache) else JudgmentCache(cache)
        self.hits = 0
        self.flipped_hits = 0
        self.misses = 0
        self.stored = 0
        self.write_error: CacheError | None = None
        _LIVE.add(self)

    @property
    def fingerprint(self) -> str:
        """The inner judge's fingerprint."""
        return self.inner.fingerprint

    @property
    def order_invariant(self) -> bool:
        """The inner judge's :func:`~lm_eval_pandalm.judge.is_order_invariant`."""
        return is_order_invariant(self.inner)

    def __call__(self, items: Sequence[PairItem]) -> list[Verdict]:
        """Judge every item, from the cache where possible; one verdict per item, same order."""
        items = list(items)
        if not items:
            return []
        fingerprint = self.inner.fingerprint
        keys = [item.key for item in items]
        requested = set(keys)
        flip_candidates: set[str] = set()
        swapped_keys: list[str | None] = [None] * len(items)
        if self.order_invariant:
            swapped_keys = [item.swapped().key for item in items]
            # A swapped entry may serve an item only when the batch does not ask for that orientation itself.
            flip_candidates = {sk for sk in swapped_keys if sk is not None and sk not in requested}
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
        self.hits += hits
        self.flipped_hits += flipped_hits
        if pending:
            self._judge_pending(items, pending, results, fingerprint)
        logger.info(
            "judgment cache %s: %d items, %d hits, %d flipped hits, %d judged by %s",
            self.cache.path,
            len(items),
            hits,
            flipped_hits,
            len(pending),
            self.judge_id,
        )
        # Every position was filled: by a hit, a flipped hit, or the fresh verdict of its key.
        return cast(list[Verdict], results)

    def _judge_pending(
        self, items: list[PairItem], pending: dict[str, list[int]], results: list[Verdict | None], fingerprint: str
    ) -> None:
        """Judge the misses chunk by chunk, storing each chunk before the next one starts."""
        from tqdm.auto import tqdm

        groups = list(pending.items())
        show = self.show_progress and len(groups) > self.chunk_size
        with tqdm(total=len(groups), desc=f"judging ({self.judge_id})", unit="item", disable=not show) as bar:
            for start in range(0, len(groups), self.chunk_size):
                chunk = groups[start : start + self.chunk_size]
                fresh = self._judge_chunk(
                    [items[positions[0]] for _, positions in chunk], [k for k, _ in chunk], fingerprint
                )
                self.misses += len(chunk)
                for (_, positions), verdict in zip(chunk, fresh, strict=True):
                    for i in positions:
                        results[i] = verdict
                bar.update(len(chunk))

    def _judge_chunk(self, to_judge: list[PairItem], keys: list[str], fingerprint: str) -> list[Verdict]:
        """Judge one chunk of misses and store its verdicts: as each arrives when the inner judge reports them so
        (an API judge, so that a kill mid-chunk loses no paid answer), else all together at the end."""
        incremental = getattr(self.inner, "judge_incrementally", None)
        if not callable(incremental):
            fresh = check_verdicts(self.inner, to_judge, self.inner(to_judge))
            self._store(fingerprint, list(zip(keys, fresh, strict=True)))
            return fresh
        stored: set[int] = set()

        def store_now(index: int, verdict: Verdict) -> None:
            self._store(fingerprint, [(keys[index], verdict)])
            stored.add(index)

        fresh = check_verdicts(self.inner, to_judge, incremental(to_judge, store_now))
        self._store(fingerprint, [(keys[j], verdict) for j, verdict in enumerate(fresh) if j not in stored])
        return fresh

    def _store(self, fingerprint: str, entries: list[tuple[str, Verdict]]) -> None:
        if self.write_error is not None:
            return
        try:
            self.stored += self.cache.put_many(fingerprint, entries)
        except (sqlite3.Error, OSError) as exc:
            error = self.cache._unusable(exc) if isinstance(exc, sqlite3.Error) else None
            message = (
                f"could not store verdicts in the judgment cache {self.cache.path}: "
                + (str(error) if error is not None else f"{type(exc).__name__}: {exc}; {_CACHE_FIX}")
                + ". The verdicts judged are kept in this run's output, but a re-run will judge them again"
            )
            self.write_error = CacheError(message, path=str(self.cache.path))
            logger.error("%s", message)

    def close(self) -> None:
        """Close the cache if this wrapper opened it (checkpointing it into its ``.sqlite`` file)."""
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


_LIVE: weakref.WeakSet[CachedJudge] = weakref.WeakSet()


def close_all() -> None:
    """Close (and checkpoint) every judgment cache this process opened through a :class:`CachedJudge`.

    Registered with :mod:`atexit`, so that after a normal exit the ``.sqlite`` file alone holds every verdict.
    """
    for judge in list(_LIVE):
        judge.close()


atexit.register(close_all)


def cache_write_errors() -> list[CacheError]:
    """The write failures of the judgment caches used in this process (one per cache file)."""
    errors: dict[str, CacheError] = {}
    for judge in list(_LIVE):
        if judge.write_error is not None:
            errors.setdefault(str(judge.cache.path), judge.write_error)
    return list(errors.values())


def cache_report() -> str:
    """What this process has stored in judgment caches so far, e.g. for the message after Ctrl-C.

    The caches are counted from every `CachedJudge` still alive in the process, so the answer depends on what ran
    before; ``tests/test_cache.py`` checks it on caches of its own.
    """
    stored: dict[str, int] = {}
    for judge in list(_LIVE):
        stored[str(judge.cache.path)] = stored.get(str(judge.cache.path), 0) + judge.stored
    total = sum(stored.values())
    if not stored:
        return "no verdicts were stored in a judgment cache"
    where = ", ".join(sorted(stored))
    return f"{total} verdicts judged in this run are in the cache ({where}); re-run the same command to resume"


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


def chunk_size_setting() -> int:
    """``$PANDALM_CHUNK_SIZE`` as a positive integer, or :data:`DEFAULT_CHUNK_SIZE` when it is unset.

    Raises:
        ValueError: The variable is set to something other than a positive integer.
    """
    value = _env("PANDALM_CHUNK_SIZE")
    if value is None:
        return DEFAULT_CHUNK_SIZE
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"PANDALM_CHUNK_SIZE={value!r} must be a positive integer (items judged and stored per chunk)")
    return int(value)


def cached(inner: Judge, path: str | os.PathLike[str] | None = None, *, chunk_size: int | None = None) -> CachedJudge:
    """Wrap ``inner`` with a judgment cache at ``path`` (default: :func:`default_cache_path`)."""
    return CachedJudge(inner, path if path is not None else default_cache_path(), chunk_size=chunk_size)


def maybe_cached(
    inner: Judge,
    path: str | os.PathLike[str] | None = None,
    enabled: bool | None = None,
    *,
    chunk_size: int | None = None,
) -> Judge:
    """``inner`` wrapped in a judgment cache, or ``inner`` itself when caching is off.

    Args:
        inner: The judge.
        path: The cache file; ``None`` means :func:`default_cache_path`.
        enabled: Whether to cache; ``None`` means :func:`cache_enabled` (the environment decides).
        chunk_size: Items per inner call and commit; ``None`` reads ``PANDALM_CHUNK_SIZE``.
    """
    if enabled is None:
        enabled = cache_enabled()
    if not enabled:
        logger.info("judgment cache disabled; every item goes to %s", inner.judge_id)
        return inner
    return cached(inner, path, chunk_size=chunk_size)
