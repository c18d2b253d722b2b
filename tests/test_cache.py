"""JudgmentCache and CachedJudge: hits, symmetric serving, failure policy, persistence, concurrency, crash recovery."""

from __future__ import annotations

import multiprocessing
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from lm_eval_pandalm.judge import Judge
from lm_eval_pandalm.testing.fakes import FakeJudge, FakeJudgeError, Fixed, PreferLonger
from lm_eval_pandalm.types import Label, PairItem, Verdict, VerdictState
from lm_eval_pandalm.wrappers import (
    CachedJudge,
    JudgmentCache,
    both_orders,
    cache_enabled,
    cached,
    default_cache_path,
    maybe_cached,
)
from lm_eval_pandalm.wrappers.cache import SCHEMA_VERSION, CacheError

ITEMS = [
    PairItem("Capital of France?", "Paris.", "It is Paris, on the Seine."),
    PairItem("2 + 2?", "4", "Four, obviously."),
    PairItem("Say hi.", "Hello there!", "Hi"),
]


def from_cache(verdicts: list[Verdict], source: str = "cache") -> list[Verdict]:
    return [replace(verdict, source=source) for verdict in verdicts]


@pytest.fixture
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "judgments.sqlite"


def test_second_run_is_served_from_the_cache(cache_path: Path) -> None:
    fake = FakeJudge(PreferLonger(position_bias=0.2))
    judge = CachedJudge(fake, cache_path)
    first = judge(ITEMS)
    second = judge(ITEMS)

    assert fake.calls == 1
    assert all(verdict.source is None for verdict in first)
    assert second == from_cache(first)
    assert (judge.hits, judge.flipped_hits, judge.misses) == (3, 0, 3)
    assert cache_path.exists()


def test_is_a_judge_with_the_inner_identity(cache_path: Path) -> None:
    fake = FakeJudge(judge_id="inner", fingerprint="fp")
    with cached(fake, cache_path) as judge:
        assert isinstance(judge, Judge)
        assert (judge.judge_id, judge.fingerprint) == ("inner", "fp")
        assert judge([]) == []
    assert fake.calls == 0


def test_swapped_pair_is_never_served_flipped_for_an_order_sensitive_judge(cache_path: Path) -> None:
    fake = FakeJudge(PreferLonger(position_bias=0.5))
    judge = CachedJudge(fake, cache_path)
    judge(ITEMS)
    swapped = [item.swapped() for item in ITEMS]
    served = judge(swapped)

    assert fake.calls == 2
    assert served == FakeJudge(PreferLonger(position_bias=0.5))(swapped)  # what the judge itself says, not a flip
    assert (judge.hits, judge.flipped_hits) == (0, 0)


def test_swapped_pair_is_served_flipped_for_an_order_invariant_judge(cache_path: Path) -> None:
    fake = FakeJudge(PreferLonger(), order_invariant=True)
    judge = CachedJudge(fake, cache_path)
    assert judge.order_invariant
    original = judge(ITEMS)
    served = judge([item.swapped() for item in ITEMS])

    assert fake.calls == 1
    assert served == [replace(verdict.flipped(), source="cache-flipped") for verdict in original]
    assert (judge.hits, judge.flipped_hits) == (0, 3)


def test_no_flipped_serving_when_the_batch_asks_for_both_orientations(cache_path: Path) -> None:
    item = ITEMS[0]
    fake = FakeJudge(PreferLonger(), order_invariant=True)
    judge = CachedJudge(fake, cache_path)
    [cached_verdict] = judge([item])

    exact, swapped = judge([item, item.swapped()])
    assert exact == replace(cached_verdict, source="cache")
    assert swapped.source is None  # judged afresh, not faked from the other orientation
    assert fake.batches[1] == [item.swapped()]
    assert (judge.hits, judge.flipped_hits, judge.misses) == (1, 0, 2)


def test_both_orders_over_a_cache_measures_real_consistency(cache_path: Path) -> None:
    # Equal lengths: the position bias decides, so the judge contradicts itself across orders.
    item = PairItem("Q", "same", "size")
    fake = FakeJudge(PreferLonger(position_bias=0.5))
    inner = CachedJudge(fake, cache_path)
    inner([item])  # only order (1, 2) is cached

    [judgment] = both_orders(inner).judge_with_orders([item])
    assert judgment.first.source == "cache"
    assert judgment.second.source is None
    assert judgment.consistent is False
    # A second pass is fully cached and reports the same, real inconsistency.
    [again] = both_orders(inner).judge_with_orders([item])
    assert again.consistent is False
    assert fake.calls == 2


def test_error_verdicts_are_not_cached_but_deterministic_failures_are(cache_path: Path) -> None:
    cache = JudgmentCache(cache_path)
    error_judge = FakeJudge(Fixed(VerdictState.ERROR), fingerprint="errors")
    judge = CachedJudge(error_judge, cache)
    assert [v.state for v in judge(ITEMS)] == [VerdictState.ERROR] * 3
    judge(ITEMS)
    assert error_judge.calls == 2  # retried
    assert cache.count("errors") == 0

    for state in (VerdictState.UNPARSED, VerdictState.OVER_CONTEXT):
        fake = FakeJudge(Fixed(state), fingerprint=state.value)
        judge = CachedJudge(fake, cache)
        judge(ITEMS)
        replayed = judge(ITEMS)
        assert fake.calls == 1
        assert [v.state for v in replayed] == [state] * 3
        assert all(v.source == "cache" and v.error for v in replayed)
    assert len(cache) == 6


def test_duplicates_in_a_batch_are_judged_once(cache_path: Path) -> None:
    a, b = ITEMS[0], ITEMS[1]
    fake = FakeJudge()
    judge = CachedJudge(fake, cache_path)
    verdicts = judge([a, b, a, a])

    assert fake.batches == [[a, b]]
    assert verdicts[0] == verdicts[2] == verdicts[3]
    assert verdicts[1] != verdicts[0]
    assert judge.misses == 2


def test_cache_persists_across_instances_with_every_field(cache_path: Path) -> None:
    verdict = Verdict.from_probs(
        "pandalm:x",
        0.6,
        0.3,
        0.1,
        raw="1\n\n### Reason: better",
        reason="better",
        reference="ref",
        generated_winner=Label.SECOND,
        prompt_tokens=123,
        completion_tokens=45,
        cost_usd=0.0012,
        latency_s=0.25,
    )
    failed = Verdict.failed("pandalm:x", VerdictState.OVER_CONTEXT, "2100 > 2048 tokens", prompt_tokens=2100)
    with JudgmentCache(cache_path) as cache:
        assert cache.put_many("fp", [("k1", verdict), ("k2", failed)]) == 2

    with JudgmentCache(cache_path) as reopened:
        assert reopened.count() == 2
        found = reopened.get_many("fp", ["k1", "k2", "missing"])
    assert found == {"k1": replace(verdict, source="cache"), "k2": replace(failed, source="cache")}


def test_fingerprints_are_isolated(cache_path: Path) -> None:
    cache = JudgmentCache(cache_path)
    one, two = FakeJudge(fingerprint="fp-1"), FakeJudge(fingerprint="fp-2")
    CachedJudge(one, cache)(ITEMS)
    CachedJudge(two, cache)(ITEMS)
    CachedJudge(two, cache)(ITEMS)

    assert (one.calls, two.calls) == (1, 1)
    assert cache.count("fp-1") == cache.count("fp-2") == 3
    assert cache.count() == len(cache) == 6
    assert cache.get_many("fp-3", [item.key for item in ITEMS]) == {}


def test_many_keys_are_looked_up_in_chunks(cache_path: Path) -> None:
    cache = JudgmentCache(cache_path)
    verdict = Verdict.hard("j", Label.TIE)
    keys = [f"key-{i}" for i in range(1234)]
    cache.put_many("fp", [(key, verdict) for key in keys])
    assert len(cache.get_many("fp", keys)) == 1234


def test_database_settings_and_schema_version(cache_path: Path) -> None:
    with JudgmentCache(cache_path):
        pass
    conn = sqlite3.connect(cache_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(CacheError, match="newer") as raised:
        JudgmentCache(cache_path)
    assert str(cache_path) in str(raised.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"this is not a database at all" * 100, "not a usable SQLite database"),
        (b"SQLite format 3\x00" + b"\xff" * 4000, "not a usable SQLite database"),
    ],
    ids=["text", "malformed"],
)
def test_a_file_that_is_not_a_cache_is_refused_naming_it_and_the_fix(
    cache_path: Path, content: bytes, match: str
) -> None:
    cache_path.parent.mkdir(parents=True)
    cache_path.write_bytes(content)
    with pytest.raises(CacheError, match=match) as raised:
        CachedJudge(FakeJudge(), cache_path)(ITEMS)
    assert str(cache_path) in str(raised.value) and "--no-cache" in str(raised.value)


def test_another_programs_database_is_refused(cache_path: Path) -> None:
    cache_path.parent.mkdir(parents=True)
    with sqlite3.connect(cache_path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(CacheError, match="tables: invoices"):
        JudgmentCache(cache_path)


def test_a_folder_as_the_cache_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match="cannot be opened"):
        JudgmentCache(tmp_path)


def test_misses_are_judged_and_committed_chunk_by_chunk(cache_path: Path) -> None:
    items = [PairItem(f"question {i}", "x" * i, "y" * (12 - i)) for i in range(12)]
    crashing = FakeJudge(raise_on_calls={3})
    judge = CachedJudge(crashing, cache_path, chunk_size=4)
    with pytest.raises(FakeJudgeError):
        judge(items)  # one call: the wrapper chunks it
    judge.close()
    assert [len(batch) for batch in crashing.batches] == [4, 4, 4]
    with JudgmentCache(cache_path) as cache:
        assert cache.count() == 8  # the two chunks judged before the crash

    resumed = FakeJudge()
    verdicts = CachedJudge(resumed, cache_path, chunk_size=4)(items)
    assert resumed.items_seen == items[8:]
    assert verdicts == from_cache(FakeJudge()(items[:8])) + FakeJudge()(items[8:])


@pytest.mark.parametrize("chunk_size", [1, 3, 8, 256])
def test_verdicts_do_not_depend_on_chunk_size_or_cache_state(tmp_path: Path, chunk_size: int) -> None:
    items = [PairItem(f"q{i}", "x" * (i % 5), "y" * (i % 3)) for i in range(20)]
    items += [item.swapped() for item in items[::3]]  # both orders of some pairs
    expected = FakeJudge(PreferLonger(position_bias=0.7))(items)
    path = tmp_path / f"chunk{chunk_size}.sqlite"
    for state in ("cold", "warm", "partly warm"):
        if state == "partly warm":
            with JudgmentCache(path) as cache, cache._connection() as conn:
                conn.execute("DELETE FROM judgments WHERE rowid % 2 = 0")
        judge = CachedJudge(FakeJudge(PreferLonger(position_bias=0.7)), path, chunk_size=chunk_size)
        got = judge(items)
        judge.close()
        assert [replace(v, source=None) for v in got] == expected, state


def test_a_lock_held_past_the_timeout_keeps_the_verdicts(cache_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    JudgmentCache(cache_path).close()
    blocker = sqlite3.connect(cache_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        fake = FakeJudge()
        judge = CachedJudge(fake, JudgmentCache(cache_path, busy_timeout_s=0.2), chunk_size=2)
        verdicts = judge(ITEMS)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert verdicts == fake(ITEMS)[: len(ITEMS)]
    assert judge.write_error is not None and str(cache_path) in str(judge.write_error)
    assert "locked" in str(judge.write_error) and "--cache" in str(judge.write_error)
    assert judge.stored == 0
    assert sum("could not store verdicts" in r.message for r in caplog.records) == 1  # said once, not per chunk


def test_a_full_disk_keeps_the_verdicts(cache_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = JudgmentCache(cache_path)
    calls = []

    def full(*args: object) -> int:
        calls.append(args)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(cache, "put_many", full)
    judge = CachedJudge(FakeJudge(), cache, chunk_size=1)
    assert judge(ITEMS) == [replace(v, judge_id="fake") for v in FakeJudge()(ITEMS)]
    assert len(calls) == 1  # later chunks are not tried again
    assert "disk is full" in str(judge.write_error)


def test_after_close_the_sqlite_file_alone_holds_everything(cache_path: Path, tmp_path: Path) -> None:
    judge = CachedJudge(FakeJudge(), cache_path, chunk_size=1)
    judge(ITEMS)
    judge.close()
    wal = cache_path.with_name(cache_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    alone = tmp_path / "copy" / "alone.sqlite"
    alone.parent.mkdir()
    alone.write_bytes(cache_path.read_bytes())
    with JudgmentCache(alone) as copy:
        assert copy.count() == len(ITEMS)


def _judge_in_small_batches(path: str, worker: int, n_items: int, batch_size: int, start) -> None:
    """Child process: judge ``n_items`` distinct items through a CachedJudge, a few at a time."""
    items = [PairItem(f"worker {worker} question {i}", "a" * (i % 7), "b" * (i % 5)) for i in range(n_items)]
    judge = CachedJudge(FakeJudge(PreferLonger(position_bias=0.25), fingerprint="fp-mp"), path)
    start.wait(timeout=60)  # start writing together, so the transactions really interleave
    for begin in range(0, n_items, batch_size):
        judge(items[begin : begin + batch_size])
    judge.close()


def test_two_processes_writing_one_cache_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    n_items, batch_size = 200, 2
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    workers = [
        ctx.Process(target=_judge_in_small_batches, args=(str(path), w, n_items, batch_size, start)) for w in (0, 1)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [process.exitcode for process in workers] == [0, 0]

    items = [PairItem(f"worker {w} question {i}", "a" * (i % 7), "b" * (i % 5)) for w in (0, 1) for i in range(n_items)]
    expected = FakeJudge(PreferLonger(position_bias=0.25))(items)
    with JudgmentCache(path) as cache:
        assert cache.count() == cache.count("fp-mp") == 2 * n_items
        found = cache.get_many("fp-mp", [item.key for item in items])
    assert [found[item.key] for item in items] == from_cache(expected)


def test_crash_keeps_completed_batches_and_a_rerun_judges_only_the_rest(cache_path: Path) -> None:
    items = [PairItem(f"question {i}", "x" * i, "y" * (12 - i)) for i in range(12)]
    batches = [items[i : i + 4] for i in range(0, 12, 4)]

    crashing = FakeJudge(raise_on_calls={3})
    judge = CachedJudge(crashing, cache_path)
    with pytest.raises(FakeJudgeError):
        for batch in batches:
            judge(batch)
    judge.close()
    assert crashing.calls == 3
    with JudgmentCache(cache_path) as cache:
        assert cache.count() == 8

    resumed = FakeJudge()
    judge = CachedJudge(resumed, cache_path)
    verdicts = [verdict for batch in batches for verdict in judge(batch)]
    assert resumed.items_seen == items[8:]
    assert resumed.calls == 1
    assert verdicts == from_cache(FakeJudge()(items[:8])) + FakeJudge()(items[8:])


# -- settings ----------------------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("PANDALM_CACHE_PATH", "PANDALM_CACHE_DIR", "XDG_CACHE_HOME", "PANDALM_NO_CACHE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_default_cache_path_precedence(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_path() == tmp_path / "home" / ".cache" / "lm_eval_pandalm" / "judgments.sqlite"
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "lm_eval_pandalm" / "judgments.sqlite"
    clean_env.setenv("PANDALM_CACHE_DIR", str(tmp_path / "dir"))
    assert default_cache_path() == tmp_path / "dir" / "judgments.sqlite"
    clean_env.setenv("PANDALM_CACHE_PATH", str(tmp_path / "exact.db"))
    assert default_cache_path() == tmp_path / "exact.db"


@pytest.mark.parametrize(("value", "enabled"), [("1", False), ("TRUE", False), ("yes", False), ("0", True), ("", True)])
def test_cache_enabled_reads_pandalm_no_cache(clean_env: pytest.MonkeyPatch, value: str, enabled: bool) -> None:
    clean_env.setenv("PANDALM_NO_CACHE", value)
    assert cache_enabled() is enabled


def test_cache_enabled_rejects_unknown_values(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("PANDALM_NO_CACHE", "maybe")
    with pytest.raises(ValueError, match="PANDALM_NO_CACHE='maybe'"):
        cache_enabled()


def test_maybe_cached_follows_the_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeJudge()
    clean_env.setenv("PANDALM_CACHE_DIR", str(tmp_path / "from-env"))
    judge = maybe_cached(fake)
    assert isinstance(judge, CachedJudge)
    judge(ITEMS[:1])
    judge.close()
    assert (tmp_path / "from-env" / "judgments.sqlite").exists()

    explicit = maybe_cached(fake, path=tmp_path / "explicit.sqlite")
    assert isinstance(explicit, CachedJudge) and explicit.cache.path == tmp_path / "explicit.sqlite"
    explicit.close()

    assert maybe_cached(fake, enabled=False) is fake
    clean_env.setenv("PANDALM_NO_CACHE", "1")
    assert maybe_cached(fake) is fake
    assert isinstance(maybe_cached(fake, path=tmp_path / "forced.sqlite", enabled=True), CachedJudge)


def test_cache_report_counts_what_this_process_stored(cache_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import weakref

    from lm_eval_pandalm.wrappers import cache as cache_module

    monkeypatch.setattr(cache_module, "_LIVE", weakref.WeakSet())
    assert cache_module.cache_report() == "no verdicts were stored in a judgment cache"

    judge = CachedJudge(FakeJudge(PreferLonger()), cache_path)
    judge(ITEMS)
    judge(ITEMS)  # served from the cache: nothing new stored
    assert cache_module.cache_report() == (
        f"3 verdicts judged in this run are in the cache ({cache_path}); re-run the same command to resume"
    )
    judge.close()
