"""The spend ledger: one record per paid API call, kept in a SQLite file that survives crashes.

API judges (:mod:`lm_eval_pandalm.judges.openai_api`) append a :class:`SpendRecord` for every call they make, the
moment the call ends, in its own committed transaction: a run that is killed loses nothing it already paid for.
``pandalm spend`` reads it back with :meth:`SpendLedger.summary` (calls, tokens and dollars per model, judge or day).

A record holds the time, the judge's id and a hash of its fingerprint, the model, the endpoint (without any
credentials), the item's content key, the tokens (and whether they were estimated because the server sent no usage),
the cost, the latency, the outcome and how many times the call was retried. It never holds an API key, a prompt or a
response.

Where it lives: the judge config's ``ledger`` option, else ``$PANDALM_LEDGER_PATH``, else ``spend.sqlite`` beside the
judgment cache (beside ``--cache PATH`` when one is given, else beside
:func:`lm_eval_pandalm.wrappers.cache.default_cache_path`). Like the cache it runs in WAL mode with a busy timeout, so
several processes can append to one file at once.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import PandaLMError
from .sqlite_schema import ensure_schema

__all__ = [
    "GROUPINGS",
    "LEDGER_ENV",
    "LEDGER_FILENAME",
    "LedgerError",
    "SpendCap",
    "SpendLedger",
    "SpendRecord",
    "default_ledger_path",
    "ledger_beside",
]

logger = logging.getLogger(__name__)

LEDGER_ENV = "PANDALM_LEDGER_PATH"
"""Environment variable naming the ledger file."""
LEDGER_FILENAME = "spend.sqlite"
"""File name of the ledger beside a judgment cache."""
SCHEMA_VERSION = 1

GROUPINGS: dict[str, str] = {
    "model": "model",
    "judge": "judge_id",
    "day": "date(time, 'unixepoch')",
}
"""What :meth:`SpendLedger.summary` can group by, and the SQL expression of each (days are UTC)."""

_BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    judge_id TEXT NOT NULL,
    fingerprint_sha256 TEXT NOT NULL,
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    item_key TEXT,
    outcome TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    tokens_estimated INTEGER NOT NULL,
    cost_usd REAL,
    latency_s REAL NOT NULL,
    retries INTEGER NOT NULL,
    error TEXT
)
"""


class LedgerError(PandaLMError):
    """The ledger file cannot be used (not a database, another program's database, newer schema)."""


@dataclass(frozen=True)
class SpendRecord:
    """One API call, as the ledger keeps it."""

    time: float
    """When the call ended (Unix seconds)."""
    judge_id: str
    """The judge that made it (e.g. ``openai:gpt-4``)."""
    fingerprint_sha256: str
    """sha256 of the judge's fingerprint: tells apart judges that share an id but not their settings."""
    model: str
    """The model named in the request."""
    endpoint: str
    """Base URL (credentials and query removed) and the API route, e.g. ``https://api.openai.com/v1 chat``."""
    item_key: str | None
    """Content key of the pair judged (:attr:`~lm_eval_pandalm.types.PairItem.key`)."""
    outcome: str
    """The verdict state the call ended in: ``ok``, ``unparsed``, ``over_context`` or ``error``."""
    prompt_tokens: int | None
    """Prompt tokens billed (from the response's usage); ``None`` when unknown (failed call)."""
    completion_tokens: int | None
    """Completion tokens billed; ``None`` when unknown."""
    tokens_estimated: bool
    """True when the server sent no usage and the token counts are estimates."""
    cost_usd: float | None
    """Dollars for the call from the judge's price table; ``None`` when the price or the tokens are unknown."""
    latency_s: float
    """Wall time of the call, retries and their waits included."""
    retries: int
    """How many times the call was retried (HTTP attempts minus one)."""
    error: str | None = None
    """What went wrong, for a failed call (never contains the API key)."""

    def __post_init__(self) -> None:
        if self.cost_usd is not None and not (math.isfinite(self.cost_usd) and self.cost_usd >= 0):
            raise ValueError(f"SpendRecord.cost_usd must be a finite number >= 0 or None, got {self.cost_usd!r}")
        if self.retries < 0:
            raise ValueError(f"SpendRecord.retries must be >= 0, got {self.retries}")


_FIELDS = tuple(f.name for f in fields(SpendRecord))
_INSERT = f"INSERT INTO calls ({', '.join(_FIELDS)}) VALUES ({', '.join('?' * len(_FIELDS))})"


def default_ledger_path() -> Path:
    """``$PANDALM_LEDGER_PATH`` if set, else ``spend.sqlite`` beside the default judgment cache."""
    explicit = os.environ.get(LEDGER_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    # Imported here: the cache module's location rules are the single source of truth for the user cache folder.
    from .wrappers.cache import default_cache_path

    return default_cache_path().with_name(LEDGER_FILENAME)


def ledger_beside(cache_path: str | os.PathLike[str]) -> Path:
    """The ledger that belongs beside the judgment cache file ``cache_path``.

    >>> ledger_beside("/tmp/x/judgments.sqlite").as_posix()
    '/tmp/x/spend.sqlite'
    """
    return Path(cache_path).expanduser().with_name(LEDGER_FILENAME)


class SpendLedger:
    """The spend ledger in a SQLite file; every :meth:`record` is committed before it returns.

    Args:
        path: The file; its folders are created. ``":memory:"`` gives a private in-memory ledger.
        create: Create the file when it does not exist; with ``False`` a missing file is a :class:`LedgerError`
            (for readers such as ``pandalm spend``).

    Raises:
        LedgerError: The file is not a ledger, has a newer schema, or is missing and ``create`` is false.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = path if path == ":memory:" else Path(path).expanduser()
        self._lock = threading.Lock()
        if isinstance(self.path, Path):
            if not create and not self.path.is_file():
                raise LedgerError(
                    f"no spend ledger at {self.path}: no API judge has recorded a call there yet; give the ledger "
                    f"of your runs with --ledger PATH (or {LEDGER_ENV})"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.Error as exc:
            raise LedgerError(
                f"spend ledger {self.path} cannot be used ({exc}); move it away, or point the judge's 'ledger' option "
                f"(or {LEDGER_ENV}) at another file"
            ) from exc

    def _migrate(self) -> None:
        ensure_schema(
            self._conn,
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            table="calls",
            newer=lambda found: LedgerError(
                f"spend ledger {self.path} has schema version {found}, newer than this package's {SCHEMA_VERSION}; "
                "upgrade lm_eval_pandalm"
            ),
            foreign=lambda tables: LedgerError(
                f"{self.path} is an SQLite database of something else (tables: {', '.join(tables)}), not a spend ledger"
            ),
        )

    # -- writing ---------------------------------------------------------------------------------------------------

    def record(self, record: SpendRecord) -> None:
        """Append one call, committed before this returns.

        Raises:
            sqlite3.Error: The write failed (disk full, read-only file, lock held past the timeout).
        """
        row = astuple(record)
        with self._lock:
            self._conn.execute(_INSERT, row)

    # -- reading ---------------------------------------------------------------------------------------------------

    def records(self, *, since: float | None = None, until: float | None = None) -> list[SpendRecord]:
        """Every call recorded between ``since`` (included) and ``until`` (excluded), oldest first."""
        where, params = _window(since, until)
        with self._lock:
            rows = self._conn.execute(f"SELECT {', '.join(_FIELDS)} FROM calls{where} ORDER BY id", params).fetchall()
        return [_record_from_row(row) for row in rows]

    def summary(
        self, by: str | None = None, *, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """Calls, tokens and dollars, in total (``by=None``) or per group (``by`` in :data:`GROUPINGS`).

        Returns:
            One dict per group, largest spend first: ``group`` (absent for the total), ``calls``, ``failed_calls``,
            ``retries``, ``prompt_tokens``, ``completion_tokens``, ``tokens``, ``estimated_token_calls`` (calls whose
            tokens are estimates), ``cost_usd`` (sum of the known costs), ``unpriced_calls`` (answered calls without a
            cost) and ``latency_s`` (summed).
        """
        if by is not None and by not in GROUPINGS:
            raise ValueError(f"cannot group the ledger by {by!r}; choose one of {', '.join(GROUPINGS)}")
        where, params = _window(since, until)
        group = f"{GROUPINGS[by]} AS grp, " if by is not None else ""
        query = (
            f"SELECT {group}COUNT(*), SUM(outcome = 'error'), SUM(retries), "
            "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), SUM(tokens_estimated), "
            "COALESCE(SUM(cost_usd), 0.0), SUM(cost_usd IS NULL AND outcome != 'error'), COALESCE(SUM(latency_s), 0.0) "
            f"FROM calls{where}" + (" GROUP BY grp ORDER BY 8 DESC, grp" if by is not None else "")
        )
        with self._lock:
            rows = self._conn.execute(query, params).fetchall()
        out = []
        for row in rows:
            values = list(row)
            entry: dict[str, Any] = {"group": values.pop(0)} if by is not None else {}
            calls, failed, retries, prompt, completion, estimated, cost, unpriced, latency = values
            if not calls:
                calls = failed = retries = estimated = unpriced = 0
            entry.update(
                calls=calls,
                failed_calls=failed or 0,
                retries=retries or 0,
                prompt_tokens=prompt,
                completion_tokens=completion,
                tokens=prompt + completion,
                estimated_token_calls=estimated or 0,
                cost_usd=cost,
                unpriced_calls=unpriced or 0,
                latency_s=latency,
            )
            out.append(entry)
        return out

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    # -- lifetime --------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Checkpoint the write-ahead log into the file and close the connection."""
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # another process still has it open: it checkpoints when it closes
                logger.debug("spend ledger %s: checkpoint skipped (%s)", self.path, exc)
            self._conn.close()

    def __enter__(self) -> SpendLedger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SpendLedger({str(self.path)!r})"


def _window(since: float | None, until: float | None) -> tuple[str, Sequence[float]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("time >= ?")
        params.append(since)
    if until is not None:
        clauses.append("time < ?")
        params.append(until)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _record_from_row(row: Iterable[Any]) -> SpendRecord:
    data = dict(zip(_FIELDS, row, strict=True))
    data["tokens_estimated"] = bool(data["tokens_estimated"])
    return SpendRecord(**data)


class SpendCap:
    """Dollars spent, and reserved by calls in flight, against an optional hard cap (thread-safe).

    A caller reserves a call's estimated cost before making it and settles it with the actual cost afterwards. A
    reservation that would take spent + reserved past the cap is refused, and so is every one after it: the cap is
    then *exhausted*. Since estimates can be low, the final spend can pass the cap, but only by what the calls in flight
    when it was reached cost beyond their estimates.

    >>> cap = SpendCap(1.0)
    >>> cap.reserve(0.6), cap.reserve(0.6), cap.exhausted
    (True, False, True)
    >>> cap.settle(0.6, 0.7); round(cap.spent, 2)
    0.7
    """

    def __init__(self, cap_usd: float | None) -> None:
        self.cap = cap_usd
        """The cap in dollars; ``None`` for none."""
        self.spent = 0.0
        """Dollars of the calls settled so far (known costs)."""
        self.reserved = 0.0
        """Estimated dollars of the calls in flight."""
        self.exhausted = False
        """True once a reservation was refused."""
        self._lock = threading.Lock()

    def reserve(self, estimate_usd: float) -> bool:
        """Whether a call estimated at ``estimate_usd`` may start (and, if so, reserve it)."""
        with self._lock:
            if self.cap is None:
                return True
            if self.exhausted or self.spent + self.reserved + estimate_usd > self.cap:
                self.exhausted = True
                return False
            self.reserved += estimate_usd
            return True

    def settle(self, estimate_usd: float, actual_usd: float | None) -> None:
        """A reserved call ended: release its estimate and add what it cost (``None``: unknown, counted as 0)."""
        with self._lock:
            if self.cap is not None:
                self.reserved -= estimate_usd
            self.spent += actual_usd or 0.0
