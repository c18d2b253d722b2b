"""`pandalm` through its command line, with bad input and faults: one clear line and exit 2, never lost work.

Issue 6 (hardening), items 4 and 5: output safety, unusable cache files, OSErrors, non-UTF-8 input, Ctrl-C, --debug,
cache write failures; and item 3's acceptance: identical verdict files whatever the chunk size and cache state.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lm_eval_pandalm.cli import main
from lm_eval_pandalm.harness.judging import clear_judge_cache
from lm_eval_pandalm.testing.fakes import FakeJudgeError

PAIRS = [
    {"instruction": f"Question {i}?", "response1": "a" * (i % 7), "response2": "b" * (i % 5), "id": f"p{i}"}
    for i in range(30)
]
# Both orders of some pairs are present, under their own ids.
PAIRS += [
    {
        "instruction": p["instruction"],
        "response1": p["response2"],
        "response2": p["response1"],
        "id": p["id"] + "-swapped",
    }
    for p in PAIRS[::4]
]


@pytest.fixture(autouse=True)
def _fresh_judges():
    clear_judge_cache()
    yield
    clear_judge_cache()


def write_pairs(path: Path, pairs: list[dict] = PAIRS) -> Path:
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    return path


def fake_judge(tmp_path: Path, **settings: object) -> str:
    """A YAML judge config for the package's fake judge (order-sensitive when position_bias is set)."""
    path = tmp_path / "fake.yaml"
    lines = ["type: fake", "name: test", "position_bias: 0.4"] + [f"{k}: {json.dumps(v)}" for k, v in settings.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def judge_cli(tmp_path: Path, *extra: str, output: Path | None = None, judge: str | None = None) -> int:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    output = output or tmp_path / "verdicts.jsonl"
    spec = judge or fake_judge(tmp_path)
    return main(["judge", "--input", str(pairs), "--judge", spec, "--output", str(output), *extra])


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if ": error: " in line]
    assert len(errors) == 1, err
    assert not any(line.startswith("Traceback") for line in err), err
    return errors[0]


# -- acceptance 2: identical verdict files whatever the chunk size and the cache state -----------------------------


@pytest.mark.parametrize("protocol", ["first-order", "both-orders"])
def test_verdict_files_are_identical_for_chunk_sizes_1_8_256_cold_and_warm(tmp_path: Path, protocol: str) -> None:
    files = {}
    for chunk in (1, 8, 256):
        cache = tmp_path / f"cache-{chunk}.sqlite"
        for state in ("cold", "warm"):
            out = tmp_path / f"{chunk}-{state}.jsonl"
            args = ["--chunk-size", str(chunk), "--cache", str(cache), "--protocol", protocol]
            assert judge_cli(tmp_path, *args, output=out) == 0
            files[(chunk, state)] = out.read_bytes()
            clear_judge_cache()
    reference = files[(256, "cold")]
    assert len(reference.splitlines()) == len(PAIRS)
    assert all(content == reference for content in files.values())
    # The judge is order-sensitive: judged once, some swapped pairs get a verdict that is not the flip of the
    # original's (so serving one order's verdict flipped for the other would have changed the file).
    verdicts = {json.loads(line)["id"]: json.loads(line)["verdict"] for line in reference.splitlines()}
    flips = [verdicts[p["id"]]["p_first"] == verdicts[p["id"] + "-swapped"]["p_second"] for p in PAIRS[:30:4]]
    assert all(flips) if protocol == "both-orders" else not any(flips)


# -- item 4: output safety -------------------------------------------------------------------------------------------


def test_output_that_is_the_input_is_refused_and_the_input_kept(tmp_path: Path, capsys) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    before = pairs.read_bytes()
    code = main(["judge", "--input", str(pairs), "--judge", fake_judge(tmp_path), "--output", str(pairs)])
    assert code == 2 and pairs.read_bytes() == before
    assert "would destroy the input" in one_error_line(capsys)


def test_output_that_is_the_replayed_verdict_file_is_refused(tmp_path: Path, capsys) -> None:
    recorded = tmp_path / "recorded.jsonl"
    assert judge_cli(tmp_path, output=recorded) == 0
    before = recorded.read_bytes()
    assert judge_cli(tmp_path, output=recorded, judge=f"replay:{recorded}") == 2
    assert recorded.read_bytes() == before
    assert "replayed verdict file" in one_error_line(capsys)


def test_an_interrupted_rerun_leaves_the_finished_output_whole(tmp_path: Path, capsys) -> None:
    out = tmp_path / "verdicts.jsonl"
    assert judge_cli(tmp_path, output=out) == 0
    finished = out.read_bytes()
    clear_judge_cache()
    # Same job again, told to crash part-way (no cache, so it really judges again).
    crashing = fake_judge(tmp_path, fail_after=5)
    with pytest.raises(FakeJudgeError):
        judge_cli(tmp_path, "--no-cache", "--chunk-size", "2", output=out, judge=crashing)
    assert out.read_bytes() == finished
    assert not list(tmp_path.glob(".verdicts.jsonl.*.partial"))


def test_empty_input_is_an_error(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert main(["judge", "--input", str(empty), "--judge", fake_judge(tmp_path), "--output", str(out)]) == 2
    assert "no pairs to judge" in one_error_line(capsys)
    assert not out.exists()


# -- item 5: clean errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"definitely not sqlite" * 50, "is not a usable SQLite database"),
        (b"SQLite format 3\x00" + b"\xff" * 5000, "is not a usable SQLite database"),
    ],
    ids=["not-a-database", "malformed"],
)
def test_an_unusable_cache_file_is_one_line_naming_it_and_the_fix(tmp_path, capsys, content, expected) -> None:
    cache = tmp_path / "broken.sqlite"
    cache.write_bytes(content)
    assert judge_cli(tmp_path, "--cache", str(cache)) == 2
    line = one_error_line(capsys)
    assert expected in line and str(cache) in line and "--no-cache" in line


def test_a_cache_of_a_newer_schema_is_one_line(tmp_path, capsys) -> None:
    cache = tmp_path / "newer.sqlite"
    with sqlite3.connect(cache) as conn:
        conn.execute("PRAGMA user_version = 99")
    assert judge_cli(tmp_path, "--cache", str(cache)) == 2
    assert "schema version 99, newer" in one_error_line(capsys)


def test_a_folder_given_as_a_file_is_one_line(tmp_path, capsys) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert judge_cli(tmp_path, output=folder) == 2
    assert "is a folder" in one_error_line(capsys)
    assert judge_cli(tmp_path, "--cache", str(folder)) == 2
    assert "cannot be opened" in one_error_line(capsys)


def test_input_that_is_not_utf8_names_the_file_and_line(tmp_path, capsys) -> None:
    pairs = tmp_path / "latin1.jsonl"
    good = json.dumps(PAIRS[0]).encode()
    pairs.write_bytes(good + b"\n" + '{"instruction": "café", "response1": "a", "response2": "b"}'.encode("latin-1"))
    code = main(["judge", "--input", str(pairs), "--judge", fake_judge(tmp_path), "--output", str(tmp_path / "o")])
    assert code == 2
    line = one_error_line(capsys)
    assert f"{pairs}: line 2" in line and "not UTF-8" in line


def test_ctrl_c_exits_130_and_says_what_is_in_the_cache(tmp_path, capsys, monkeypatch) -> None:
    from lm_eval_pandalm.testing import fakes

    calls = {"n": 0}
    real = fakes._LoggingFakeJudge.__call__

    def interrupted(self, items):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, items)

    monkeypatch.setattr(fakes._LoggingFakeJudge, "__call__", interrupted)
    cache = tmp_path / "c.sqlite"
    assert judge_cli(tmp_path, "--chunk-size", "4", "--cache", str(cache)) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "8 verdicts judged in this run are in the cache" in err and "re-run" in err
    assert "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path, monkeypatch) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    args = ["judge", "--input", str(empty), "--judge", fake_judge(tmp_path), "--output", str(tmp_path / "o")]
    with pytest.raises(ValueError, match="no pairs to judge"):
        main([*args, "--debug"])
    monkeypatch.setenv("PANDALM_DEBUG", "1")
    with pytest.raises(ValueError, match="no pairs to judge"):
        main(args)


def test_duplicate_ids_in_the_input_are_named(tmp_path, capsys) -> None:
    pairs = write_pairs(tmp_path / "dups.jsonl", [PAIRS[0], PAIRS[1], {**PAIRS[2], "id": "p0"}])
    assert main(["judge", "--input", str(pairs), "--judge", fake_judge(tmp_path), "--output", str(tmp_path / "o")]) == 2
    line = one_error_line(capsys)
    assert "line 3" in line and "'p0' was already used on line 1" in line


# -- item 2: a failed cache write loses no verdicts ------------------------------------------------------------------


def test_a_cache_locked_past_the_timeout_keeps_every_verdict_in_the_output(tmp_path, capsys, monkeypatch) -> None:
    from lm_eval_pandalm.wrappers import JudgmentCache

    cache = tmp_path / "locked.sqlite"
    JudgmentCache(cache).close()
    monkeypatch.setenv("PANDALM_CACHE_TIMEOUT", "0.2")
    blocker = sqlite3.connect(cache, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        code = judge_cli(tmp_path, "--cache", str(cache), "--chunk-size", "5")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert code == 2
    lines = (tmp_path / "verdicts.jsonl").read_text().splitlines()
    assert len(lines) == len(PAIRS) and all(json.loads(line)["verdict"]["state"] == "ok" for line in lines)
    err = capsys.readouterr().err
    assert str(cache) in err and "locked" in err and "--no-cache" in err


def test_after_a_normal_exit_the_sqlite_file_alone_holds_everything(tmp_path) -> None:
    import subprocess
    import sys

    from lm_eval_pandalm.wrappers import JudgmentCache

    cache = tmp_path / "c.sqlite"
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    command = [sys.executable, "-m", "lm_eval_pandalm.cli", "judge", "--input", str(pairs), "--judge"]
    command += [fake_judge(tmp_path), "--output", str(tmp_path / "v.jsonl"), "--cache", str(cache), "--chunk-size", "3"]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    wal = cache.with_name(cache.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    alone = tmp_path / "copy" / "alone.sqlite"
    alone.parent.mkdir()
    alone.write_bytes(cache.read_bytes())
    with JudgmentCache(alone) as copy:  # one verdict per distinct pair (p0 and its swap are the same pair)
        assert copy.count() == len({(p["instruction"], p["response1"], p["response2"]) for p in PAIRS})


def test_a_full_disk_is_one_line_and_leaves_no_partial_output(tmp_path, capsys, monkeypatch) -> None:
    import errno

    from lm_eval_pandalm import files

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full)
    out = tmp_path / "verdicts.jsonl"
    assert judge_cli(tmp_path, output=out) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "free some space" in line
    assert not out.exists() and not list(tmp_path.glob(".verdicts.jsonl.*"))
