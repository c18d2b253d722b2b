"""Locating, downloading and verifying upstream data files (network replaced by a local fake)."""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lm_eval_pandalm.data import sources
from lm_eval_pandalm.data.sources import (
    COMMITS,
    LLMBAR_REPO,
    PINNED_SHA256,
    ChecksumMismatchError,
    DataUnavailableError,
    SourceFile,
    cache_dir,
    is_offline,
    read_json,
    read_jsonl,
    resolve,
    source_file,
)

SMALL = source_file(LLMBAR_REPO, "Dataset/LLMBar/Adversarial/Manual/dataset.json")
UNPINNED = source_file(LLMBAR_REPO, "Dataset/Processed/MT-Bench/evaluators/GPT-4/Vanilla_NoRules/result.json")
# Mirror files the package does not read.
UNUSED = {"SOURCES.md", "LICENSE", "pipeline-sanity-check.json"}


class FakeResponse(io.BytesIO):
    """What ``urllib.request.urlopen`` returns, serving fixed bytes."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("PANDALM_OFFLINE", raising=False)


class FakeNetwork:
    """Stands in for urlopen: serves ``served[url]``; any other URL fails like an unreachable host."""

    def __init__(self) -> None:
        self.served: dict[str, bytes] = {}
        self.calls: list[str] = []

    def urlopen(self, url: str, timeout: float | None = None) -> FakeResponse:
        self.calls.append(url)
        if url not in self.served:
            raise urllib.error.URLError("unreachable in tests")
        return FakeResponse(self.served[url])


@pytest.fixture
def fake_network(monkeypatch: pytest.MonkeyPatch, online: None) -> FakeNetwork:
    network = FakeNetwork()
    monkeypatch.setattr(urllib.request, "urlopen", network.urlopen)
    return network


def _copy_into(data_dir: Path, file: SourceFile, shared: Path) -> Path:
    dest = data_dir / file.relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / file.relpath, dest)
    return dest


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]


# -- SourceFile -----------------------------------------------------------------------------------------------------


def test_source_file_url_and_relpath() -> None:
    file = source_file("WeOpenML/PandaLM", "data/testset-v1.json")
    commit = COMMITS["WeOpenML/PandaLM"]
    assert file.url == f"https://raw.githubusercontent.com/WeOpenML/PandaLM/{commit}/data/testset-v1.json"
    assert file.relpath == "WeOpenML/PandaLM/data/testset-v1.json"
    assert file.sha256 == "cc154f9067c7382d7ea86f8f246511a5e1ac87e1fddd845c5938d789505b07a4"
    # Characters outside URL paths are escaped in the address, not in the mirror layout.
    odd = source_file(LLMBAR_REPO, "Dataset/Processed/LLMEval^2/dataset.json")
    assert odd.url.endswith("/Dataset/Processed/LLMEval%5E2/dataset.json")
    assert odd.relpath.endswith("LLMEval^2/dataset.json")


@pytest.mark.parametrize(
    ("repo", "commit", "path"),
    [("a/b", "123", "x"), ("ab", "0" * 40, "x"), ("a/b", "0" * 40, "../x"), ("a/b", "0" * 40, "/etc/passwd")],
)
def test_source_file_rejects_bad_fields(repo: str, commit: str, path: str) -> None:
    with pytest.raises(ValueError):
        SourceFile(repo=repo, commit=commit, path=path)


def test_source_file_unknown_repo() -> None:
    with pytest.raises(ValueError, match="pinned repositories"):
        source_file("someone/else", "x.json")


def test_pinned_checksums_match_the_mirror(shared_data_dir: Path) -> None:
    for relpath, expected in PINNED_SHA256.items():
        path = shared_data_dir / relpath
        if path.is_file():  # the Processed sets are pinned but not mirrored
            assert hashlib.sha256(path.read_bytes()).hexdigest() == expected, relpath


def test_every_mirrored_data_file_is_pinned(shared_data_dir: Path) -> None:
    unpinned = [
        str(p.relative_to(shared_data_dir))
        for p in _files_under(shared_data_dir)
        if p.name not in UNUSED and str(p.relative_to(shared_data_dir)) not in PINNED_SHA256
    ]
    assert unpinned == []


# -- locations ------------------------------------------------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PANDALM_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("PANDALM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "lm_eval_pandalm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "lm_eval_pandalm"


@pytest.mark.parametrize(
    ("env", "offline"),
    [
        ({}, False),
        ({"HF_HUB_OFFLINE": "1"}, True),
        ({"PANDALM_OFFLINE": "true"}, True),
        ({"HF_HUB_OFFLINE": "0"}, False),
    ],
)
def test_is_offline(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], offline: bool) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("PANDALM_OFFLINE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_offline() is offline


# -- mirror ---------------------------------------------------------------------------------------------------------


def test_resolve_from_mirror(shared_data_dir: Path) -> None:
    assert resolve(SMALL) == shared_data_dir / SMALL.relpath
    assert resolve(SMALL, data_dir=shared_data_dir) == shared_data_dir / SMALL.relpath


def test_correct_copy_in_data_dir_resolves(tmp_path: Path, shared_data_dir: Path) -> None:
    dest = _copy_into(tmp_path, SMALL, shared_data_dir)
    assert resolve(SMALL, data_dir=tmp_path) == dest


def test_corrupted_copy_in_data_dir_is_refused(tmp_path: Path, shared_data_dir: Path) -> None:
    dest = _copy_into(tmp_path, SMALL, shared_data_dir)
    data = bytearray(dest.read_bytes())
    data[100] ^= 0x01
    dest.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError) as info:
        resolve(SMALL, data_dir=tmp_path)
    message = str(info.value)
    assert str(dest) in message
    assert SMALL.sha256 in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert info.value.expected == SMALL.sha256


def test_verification_is_cached_per_file_state(
    tmp_path: Path, shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = _copy_into(tmp_path, SMALL, shared_data_dir)
    calls: list[Path] = []
    real = sources.sha256_file

    def counting(path: Path) -> str:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(sources, "sha256_file", counting)
    for _ in range(3):
        resolve(SMALL, data_dir=tmp_path)
    assert len(calls) == 1
    # Changing the file invalidates the memo: it is hashed again, and refused.
    dest.write_bytes(dest.read_bytes() + b" ")
    with pytest.raises(ChecksumMismatchError):
        resolve(SMALL, data_dir=tmp_path)
    assert len(calls) == 2


def test_offline_without_data_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANDALM_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as info:
        resolve(SMALL, data_dir=tmp_path / "empty")
    message = str(info.value)
    assert SMALL.relpath in message
    assert "PANDALM_DATA_DIR" in message and "--data-dir" in message
    assert info.value.relpath == SMALL.relpath


def test_offline_env_var_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PANDALM_DATA_DIR", raising=False)
    with pytest.raises(DataUnavailableError, match="PANDALM_DATA_DIR"):
        resolve(SMALL)  # HF_HUB_OFFLINE=1 comes from conftest


# -- download -------------------------------------------------------------------------------------------------------


def test_download_into_cache_then_served_from_cache(
    tmp_path: Path, shared_data_dir: Path, fake_network: FakeNetwork
) -> None:
    payload = (shared_data_dir / SMALL.relpath).read_bytes()
    fake_network.served[SMALL.url] = payload
    path = resolve(SMALL, data_dir=tmp_path / "empty-mirror")
    assert path == cache_dir() / "data" / SMALL.relpath
    assert path.read_bytes() == payload
    assert fake_network.calls == [SMALL.url]
    assert [p.name for p in _files_under(cache_dir())] == [path.name]  # no temp files left behind

    del fake_network.served[SMALL.url]  # a second resolve must not need the network
    assert resolve(SMALL, data_dir=tmp_path / "empty-mirror") == path
    assert fake_network.calls == [SMALL.url]


def test_mismatched_download_is_refused_and_not_cached(fake_network: FakeNetwork, tmp_path: Path) -> None:
    fake_network.served[SMALL.url] = b'[{"input": "tampered"}]'
    with pytest.raises(ChecksumMismatchError) as info:
        resolve(SMALL, data_dir=tmp_path / "empty-mirror")
    assert SMALL.sha256 in str(info.value)
    assert _files_under(cache_dir()) == []


def test_bad_cached_file_is_refused(shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PANDALM_DATA_DIR", raising=False)
    cached = _copy_into(cache_dir() / "data", SMALL, shared_data_dir)
    assert resolve(SMALL) == cached
    cached.write_bytes(b"[]")
    with pytest.raises(ChecksumMismatchError, match="Delete"):
        resolve(SMALL)


def test_unpinned_download_is_trusted_on_first_use(fake_network: FakeNetwork, caplog: pytest.LogCaptureFixture) -> None:
    assert UNPINNED.sha256 is None
    payload = b'[{"results": []}]'
    fake_network.served[UNPINNED.url] = payload
    with caplog.at_level(logging.WARNING, logger="lm_eval_pandalm.data.sources"):
        path = resolve(UNPINNED)
    assert path.read_bytes() == payload
    sidecar = path.with_name(path.name + ".sha256")
    assert sidecar.read_text().split()[0] == hashlib.sha256(payload).hexdigest()
    assert any("unpinned" in rec.getMessage() and rec.levelno == logging.WARNING for rec in caplog.records)

    assert resolve(UNPINNED) == path  # checked against the sidecar, still fine
    path.write_bytes(b"[]")
    with pytest.raises(ChecksumMismatchError) as info:
        resolve(UNPINNED)
    assert hashlib.sha256(payload).hexdigest() in str(info.value)


def test_download_failure_is_data_unavailable(fake_network: FakeNetwork) -> None:
    with pytest.raises(DataUnavailableError, match="download failed") as info:
        resolve(UNPINNED)
    assert "PANDALM_DATA_DIR" in str(info.value)
    assert _files_under(cache_dir()) == []


# -- readers --------------------------------------------------------------------------------------------------------


def test_read_json_and_jsonl(shared_data_dir: Path) -> None:
    assert len(read_json(SMALL)) == 46
    rows = read_jsonl(source_file("yizhongw/self-instruct", "human_eval/user_oriented_instructions.jsonl"))
    assert len(rows) == 252


def test_read_jsonl_path_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": \n')
    with pytest.raises(ValueError, match=r"bad\.jsonl: line 3"):
        sources.read_jsonl_path(path)
