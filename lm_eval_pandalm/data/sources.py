"""Where the package's data files come from, and how they are found, downloaded and verified.

Every data file is a file of a public GitHub repository at a pinned commit (:class:`SourceFile`). :func:`resolve`
finds it, in this order:

1. a local mirror laid out as ``<owner>/<repo>/<path>`` (the ``data_dir`` argument, else ``$PANDALM_DATA_DIR``);
2. the user cache, ``<cache>/data/<owner>/<repo>/<path>``, where ``<cache>`` is ``$PANDALM_CACHE_DIR``, else
   ``$XDG_CACHE_HOME/lm_eval_pandalm``, else ``~/.cache/lm_eval_pandalm``;
3. a download from ``raw.githubusercontent.com`` into the cache, unless offline (``HF_HUB_OFFLINE=1`` or
   ``PANDALM_OFFLINE=1``).

A file with a pinned sha256 is verified wherever it is read from; a mismatch is an error, never a warning. A file
without one (LLMBar's ``Processed`` evaluator outputs, which the offline mirror does not hold) is trusted on first
download: its sha256 is recorded beside it in the cache and checked on every later read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PandaLMError

__all__ = [
    "COMMITS",
    "FIX_HINT",
    "PINNED_SHA256",
    "ChecksumMismatchError",
    "DataError",
    "DataUnavailableError",
    "JsonLinesError",
    "SourceFile",
    "cache_dir",
    "is_offline",
    "iter_json_lines",
    "read_json",
    "read_jsonl",
    "read_jsonl_path",
    "read_utf8",
    "resolve",
    "sha256_file",
    "source_file",
    "utf8_lines",
]

logger = logging.getLogger(__name__)

PANDALM_REPO = "WeOpenML/PandaLM"
SELF_INSTRUCT_REPO = "yizhongw/self-instruct"
AUTOJ_REPO = "GAIR-NLP/auto-j"
LLMBAR_REPO = "princeton-nlp/LLMBar"

COMMITS: dict[str, str] = {
    PANDALM_REPO: "3871806e72b4832f815ecafd24d3503c73403f48",
    SELF_INSTRUCT_REPO: "0b26ccaa415992100fa32df62d41b994cf928e23",
    AUTOJ_REPO: "2ae17a3965d933232e9cd50302aa0f176249c83b",
    LLMBAR_REPO: "900616bff90b6c6c8e1681f7d079250637c55992",
}
"""The commit each upstream repository is pinned at (SOURCES.md)."""

_LLMBAR_EVAL = "Dataset/LLMBar/{}/evaluators/{}/Vanilla_NoRules/{}"

PINNED_SHA256: dict[str, str] = {
    # -- benchmark files, from SOURCES.md --
    "WeOpenML/PandaLM/data/testset-v1.json": "cc154f9067c7382d7ea86f8f246511a5e1ac87e1fddd845c5938d789505b07a4",
    "WeOpenML/PandaLM/data/gpt-3.5-turbo-testset-v1.json": (
        "4c00aa7b3eeae504050a037422ba6f5b0a2ee041680f47bb77b8a4b549b128e3"
    ),
    "WeOpenML/PandaLM/data/pandalm-7b-testset-v1.json": (
        "9a40b62a7bb2aa87ca77eb8bfcb51539b5a62f974ce91678d30e834d65ed0a7e"
    ),
    "WeOpenML/PandaLM/data/testset-inference-v1.json": (
        "170fef9eb10de404cdb3e2d9c6e3fab5cf656d47bd199cd6b368509e5bfc2967"
    ),
    "yizhongw/self-instruct/human_eval/user_oriented_instructions.jsonl": (
        "81d60a117db495cecedecd9193504fd07c5b5a42f6699ef6b0f9da10fc22f42e"
    ),
    "GAIR-NLP/auto-j/data/test/testdata_pairwise.jsonl": (
        "56f32fad71d9b6b33bc4d51794c324981e26355bcbf3ce4908d7f8ddcc61f80e"
    ),
    "princeton-nlp/LLMBar/Dataset/LLMBar/Natural/dataset.json": (
        "f7127b7aa78104cb8e03a2b1b3ac0077e95b125714dd441a8ee63666145a3375"
    ),
    "princeton-nlp/LLMBar/Dataset/LLMBar/Adversarial/Neighbor/dataset.json": (
        "6712c7eda6342602e0bc7c06c282fa95e2110d4e741a284026a62d937f9780a0"
    ),
    "princeton-nlp/LLMBar/Dataset/LLMBar/Adversarial/GPTInst/dataset.json": (
        "1002425f73c2cf54b6e6de99bce3f6c60fa2a17d13194772e37d7481c1351d42"
    ),
    "princeton-nlp/LLMBar/Dataset/LLMBar/Adversarial/GPTOut/dataset.json": (
        "1ff56e520d7607750a9866a3be0f5b850392ca4477a1f69d80f32bd3e310f561"
    ),
    "princeton-nlp/LLMBar/Dataset/LLMBar/Adversarial/Manual/dataset.json": (
        "0d9598769a39cdbbd265778c37e49939d41d5f76dcfb17bd75dcfa07516d3837"
    ),
    "princeton-nlp/LLMBar/Dataset/Processed/FairEval/dataset.json": (
        "5b4a129258c1efa273a1b10fec399f5462b458facf900e8e1948f4acb1b37dd6"
    ),
    "princeton-nlp/LLMBar/Dataset/Processed/LLMEval^2/dataset.json": (
        "deffdaeccda39c0fb9337c7e20925ec2b973bfd456832c2f1ba0e9ca4cf107de"
    ),
    "princeton-nlp/LLMBar/Dataset/Processed/MT-Bench/dataset.json": (
        "c152249bc095d152485954bd2abd9ea79528ee5e4c045bfe9ef78755b03c20d8"
    ),
    # -- LLMBar's recorded judge outputs, computed from the offline mirror at the pinned commit --
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Natural", "ChatGPT", "result.json"): (
        "6a057e7e6e10729f54baf371830806eb370910165a4863edd953f931db9cf785"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Natural", "ChatGPT", "statistics.json"): (
        "65f25c92edc86def279193e0bd50422bd439aa687807f27993e3844e4ee3c63d"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Natural", "GPT-4", "result.json"): (
        "3189ad93242182e742994a67e5d94410cde5be5b01bce7c3df31c6113b141aef"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Natural", "GPT-4", "statistics.json"): (
        "ea9119976991cfdd2c2b24761ac6fafd313c711272d050695b117a9a696471ea"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Natural", "LLaMA2", "result.json"): (
        "6c939b9a17e8d5b0d29edcc4d0f65595fb17e2da4916577dde2e624582e67fe5"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Natural", "LLaMA2", "statistics.json"): (
        "b644ddc730f7518df3ef0a10ce65b59ff93ffec0b0dbdde7fde8cd1c5b7475d6"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Neighbor", "ChatGPT", "result.json"): (
        "d5232f553b8bf8798491c47317868c86127136a2673d7ed333f40baacfba80ec"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Neighbor", "ChatGPT", "statistics.json"): (
        "55fc56718c28383eacd64d27b67084e723e99dfb418b50689e1b13ace48ee530"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Neighbor", "GPT-4", "result.json"): (
        "5fbbf07c6bb39885133dc9a6b48bc781a8f3ec1a4be64b62daf288433990abfa"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Neighbor", "GPT-4", "statistics.json"): (
        "c982983e7736b2387051550646115bdbebd41759bab3c989ed45d2e8847f1fa0"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Neighbor", "LLaMA2", "result.json"): (
        "9046935aa04a1e8466583bf4bdea98a3d9d6bf63db9914126360984074fe5286"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Neighbor", "LLaMA2", "statistics.json"): (
        "c965a65326b24aa97629e5372dad28f69726548bad9d0ab0f9c0e7d4f8ff210f"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTInst", "ChatGPT", "result.json"): (
        "d3353eb5d170dbcde2aef877827528cabe5592f3d09c27251be93ae81c88ff14"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTInst", "ChatGPT", "statistics.json"): (
        "62ecc3c8ac0aab372740fa970f80d35d1d59457856d71c6a9220117b6fb5148e"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTInst", "GPT-4", "result.json"): (
        "cb42fb3c474cea1bf022678c02e526079a4305983c073c7a1f464aaa63ac00aa"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTInst", "GPT-4", "statistics.json"): (
        "042b86447c459210ebd294e971d30860b5e17b43273e265dd6411158c8a8c473"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTInst", "LLaMA2", "result.json"): (
        "413d9b2220b5d28506f0d98f62c225c6c3af72fec7b8f5c9aef9c829813d2ba3"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTInst", "LLaMA2", "statistics.json"): (
        "b01143ce20e11538bd5b11c2ee611043bde63f05339294c4bd197a2a62877747"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTOut", "ChatGPT", "result.json"): (
        "4b269f20e0b9b0ff82ee740f86b6c8152cb805be10615bd65f82c8a7133639c3"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTOut", "ChatGPT", "statistics.json"): (
        "16fa474adeecc40fbf784bd96825aa02ddfb1df4b8301a963b6b2e3f8015fba6"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTOut", "GPT-4", "result.json"): (
        "08f00637076102cdfb8ae6bc7d3e881b6eab5669e9cdbbc3e1a58d07e5239986"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTOut", "GPT-4", "statistics.json"): (
        "2720df17f1c986a255a2a9aeffcca88d681cad154de8d5271f2812f9c21de0e4"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTOut", "LLaMA2", "result.json"): (
        "0bbf630aca80f52f54eab14c203dd73fbc4371871745f7f78e7eec2f772e0804"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/GPTOut", "LLaMA2", "statistics.json"): (
        "24fe86dc927d72007b3dcd3cf68583834d51081fcaf4eb09d7dedbd0b23e6926"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Manual", "ChatGPT", "result.json"): (
        "048dff96d7cb70b1141b41a8e8539c4a070706658587b3982ed4887ca74a50fe"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Manual", "ChatGPT", "statistics.json"): (
        "866339fa39f61105288ea566e171677bd1f3170af1b1040a961339093be8d8e8"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Manual", "GPT-4", "result.json"): (
        "0882b3288b90fee392e1b7ee5262b6087849dd046e954b5ffa23e494a341448d"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Manual", "GPT-4", "statistics.json"): (
        "8358fdd4b86e614780d10e25eeff8d3d9a09641dc034ea8592567a9cbda8982a"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Manual", "LLaMA2", "result.json"): (
        "c180c37e00039193e4bbe321a9fb5d11cf4e3798ad257bbdbdf70568b2cb50e0"
    ),
    "princeton-nlp/LLMBar/" + _LLMBAR_EVAL.format("Adversarial/Manual", "LLaMA2", "statistics.json"): (
        "83ef0ecac337f5bbc255cc092acf9d9c825491b0f516b39204cb793ced8bc34e"
    ),
}
"""sha256 of every upstream file the package reads whose content is known, keyed by ``<owner>/<repo>/<path>``."""

_RAW_BASE = "https://raw.githubusercontent.com"
_DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 16
_TRUTHY = frozenset({"1", "true", "yes", "on"})


class DataError(PandaLMError):
    """Base class of the errors raised while locating or verifying a data file."""


class ChecksumMismatchError(DataError):
    """A data file's content is not the pinned (or first-seen) content; it is refused, never used."""

    def __init__(self, path: str | Path, expected: str, actual: str, hint: str = "") -> None:
        self.path = str(path)
        self.expected = expected
        self.actual = actual
        message = f"sha256 mismatch for {self.path}: expected {expected}, got {actual}; refusing to use it."
        super().__init__(f"{message} {hint}".strip())


class DataUnavailableError(DataError):
    """A data file is in no mirror, not in the cache, and cannot be downloaded (offline or network failure)."""

    def __init__(self, message: str, *, relpath: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.relpath = relpath
        """The missing file, as ``<owner>/<repo>/<path>``."""
        self.reason = reason
        """Why it could not be fetched (``offline mode is on``, ``download failed: ...``)."""


FIX_HINT = (
    "pass --data-dir DIR or set PANDALM_DATA_DIR to a mirror laid out as <owner>/<repo>/<path> that holds it, or go "
    "online (unset HF_HUB_OFFLINE / PANDALM_OFFLINE) so it can be downloaded"
)
"""How to make an unavailable data file available; part of every :class:`DataUnavailableError` message."""


@dataclass(frozen=True)
class SourceFile:
    """One file of a public GitHub repository at a pinned commit."""

    repo: str
    """``owner/name`` on GitHub, e.g. ``WeOpenML/PandaLM``."""
    commit: str
    """The full 40-hex-digit commit the file is read at."""
    path: str
    """Path inside the repository, ``/``-separated."""
    sha256: str | None = None
    """Expected sha256 of the content; ``None`` when not known in advance (trusted on first download)."""

    def __post_init__(self) -> None:
        if len(self.commit) != 40 or any(c not in "0123456789abcdef" for c in self.commit):
            raise ValueError(f"SourceFile.commit must be 40 lowercase hex digits, got {self.commit!r}")
        if self.repo.count("/") != 1:
            raise ValueError(f"SourceFile.repo must be 'owner/name', got {self.repo!r}")
        if self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(f"SourceFile.path must be relative and stay inside the repository, got {self.path!r}")

    @property
    def url(self) -> str:
        """Download address at the pinned commit (the path percent-encoded, e.g. ``LLMEval^2``)."""
        return f"{_RAW_BASE}/{self.repo}/{self.commit}/{urllib.parse.quote(self.path, safe='/')}"

    @property
    def relpath(self) -> str:
        """Where the file lies in a mirror or in the cache: ``<owner>/<repo>/<path>``."""
        return f"{self.repo}/{self.path}"


def source_file(repo: str, path: str) -> SourceFile:
    """The :class:`SourceFile` for ``path`` of a known repository, at its pinned commit and with its pinned sha256.

    Args:
        repo: ``owner/name``; must be one of :data:`COMMITS`.
        path: Path inside the repository.

    Raises:
        ValueError: ``repo`` is not one of the pinned repositories.
    """
    if repo not in COMMITS:
        raise ValueError(f"unknown repository {repo!r}; pinned repositories: {', '.join(sorted(COMMITS))}")
    return SourceFile(repo=repo, commit=COMMITS[repo], path=path, sha256=PINNED_SHA256.get(f"{repo}/{path}"))


# -- locations ------------------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The package's user cache directory (``$PANDALM_CACHE_DIR``, ``$XDG_CACHE_HOME/lm_eval_pandalm`` or
    ``~/.cache/lm_eval_pandalm``); data files lie under its ``data/`` folder."""
    explicit = os.environ.get("PANDALM_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "lm_eval_pandalm"


def is_offline() -> bool:
    """True when the environment forbids network access (``HF_HUB_OFFLINE`` or ``PANDALM_OFFLINE`` set truthy)."""
    return any(os.environ.get(var, "").strip().lower() in _TRUTHY for var in ("HF_HUB_OFFLINE", "PANDALM_OFFLINE"))


def _data_dir(data_dir: str | Path | None) -> Path | None:
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get("PANDALM_DATA_DIR")
    return Path(env).expanduser() if env else None


# -- verification ---------------------------------------------------------------------------------------------------


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# (path, mtime_ns, size, expected sha256) of files already verified in this process: resolving the same file again
# costs one stat() instead of re-hashing megabytes. Only successes are remembered.
_verified: set[tuple[str, int, int, str]] = set()


def _verify(path: Path, expected: str, hint: str = "") -> None:
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, expected)
    if memo in _verified:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumMismatchError(path, expected, actual, hint)
    _verified.add(memo)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_sidecar(sidecar: Path) -> str:
    text = sidecar.read_text(encoding="utf-8").strip()
    return text.split()[0] if text else ""


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _verify_cached(file: SourceFile, path: Path) -> None:
    fix = f"Delete {path} to download it again."
    if file.sha256 is not None:
        _verify(path, file.sha256, fix)
        return
    sidecar = _sidecar(path)
    if not sidecar.is_file():
        # A file put into the cache by hand: trust it now, as a download would have been trusted.
        actual = sha256_file(path)
        _write_atomic(sidecar, f"{actual}  {path.name}\n".encode())
        logger.warning(
            "%s is unpinned (no known sha256); recorded %s in %s and will check it from now on (trust on first use)",
            file.relpath,
            actual,
            sidecar,
        )
        return
    _verify(path, _read_sidecar(sidecar), fix)


# -- resolution -----------------------------------------------------------------------------------------------------


def resolve(file: SourceFile, data_dir: str | Path | None = None) -> Path:
    """Local path of a verified copy of ``file``, downloading it into the user cache if needed.

    Args:
        file: The file to find.
        data_dir: A mirror laid out as ``<owner>/<repo>/<path>``; defaults to ``$PANDALM_DATA_DIR``. A file missing
            from the mirror is looked for in the cache and then downloaded.

    Returns:
        Path of the file in the mirror or in the cache.

    Raises:
        ChecksumMismatchError: The file found (or downloaded) does not have its pinned or first-seen sha256.
        DataUnavailableError: The file is nowhere locally and the network is off-limits or failed.
    """
    mirror = _data_dir(data_dir)
    if mirror is not None:
        candidate = mirror / file.relpath
        if candidate.is_file():
            if file.sha256 is not None:
                _verify(candidate, file.sha256, f"The mirror {mirror} holds a different file; fix or remove it.")
            else:
                logger.debug("%s has no pinned sha256; using the mirror's copy unverified", candidate)
            return candidate
        logger.info("%s is not in the data dir %s; looking in the cache", file.relpath, mirror)

    cached = cache_dir() / "data" / file.relpath
    if cached.is_file():
        _verify_cached(file, cached)
        return cached

    if is_offline():
        raise _unavailable(file, mirror, cached, "offline mode is on")
    return _download(file, cached, mirror)


def _unavailable(file: SourceFile, mirror: Path | None, cached: Path, why: str) -> DataUnavailableError:
    looked = f"{mirror / file.relpath} and {cached}" if mirror is not None else str(cached)
    message = f"data file {file.relpath} is not available ({why}); looked in {looked}. Fix: {FIX_HINT} from {file.url}"
    return DataUnavailableError(message, relpath=file.relpath, reason=why)


def _download(file: SourceFile, dest: Path, mirror: Path | None) -> Path:
    from tqdm.auto import tqdm  # only needed when downloading

    dest.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", file.url, dest)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(file.url, timeout=_DOWNLOAD_TIMEOUT_S) as resp:
                length = resp.headers.get("Content-Length") if getattr(resp, "headers", None) else None
                total = int(length) if length and str(length).isdigit() else None
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc=Path(file.path).name, leave=False, disable=None
                ) as bar:
                    for chunk in iter(lambda: resp.read(_CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise _unavailable(file, mirror, dest, f"download failed: {exc}") from exc
        actual = digest.hexdigest()
        if file.sha256 is not None and actual != file.sha256:
            raise ChecksumMismatchError(file.url, file.sha256, actual, "The download was discarded.")
        if file.sha256 is None:
            _write_atomic(_sidecar(dest), f"{actual}  {dest.name}\n".encode())
            logger.warning(
                "%s is unpinned (no known sha256); trusting this first download (sha256 %s, recorded in %s) and "
                "checking later reads against it",
                file.relpath,
                actual,
                _sidecar(dest),
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


# -- readers --------------------------------------------------------------------------------------------------------


def read_utf8(path: str | Path) -> str:
    """A text file's content, which must be UTF-8.

    Raises:
        JsonLinesError: The file is not UTF-8 (names the file and the 1-based line of the first bad byte).
        OSError: The file cannot be read.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise JsonLinesError(
            path, line, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); save the file as UTF-8"
        ) from None


def utf8_lines(path: str | Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, read one at a time (for files too large to hold twice).

    Raises:
        JsonLinesError: A line is not UTF-8 (names the file and the line).
    """
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise JsonLinesError(
                    path,
                    lineno,
                    f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8",
                ) from None


def read_json(file: SourceFile, data_dir: str | Path | None = None) -> Any:
    """Parse a verified JSON data file (see :func:`resolve`)."""
    path = resolve(file, data_dir)
    try:
        return json.loads(read_utf8(path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc


def read_jsonl(file: SourceFile, data_dir: str | Path | None = None) -> list[Any]:
    """Parse a verified JSON-lines data file, one value per non-blank line (see :func:`resolve`)."""
    path = resolve(file, data_dir)
    return read_jsonl_path(path)


class JsonLinesError(ValueError):
    """A line of a JSON-lines file is not valid JSON; carries the file and the 1-based line."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(f"{self.path}: line {line}: {problem}")


def iter_json_lines(lines: Iterable[str], path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line; the one JSON-lines reader of the package.

    Raises:
        JsonLinesError: A line is not valid JSON (names ``path`` and the 1-based line).
    """
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise JsonLinesError(path, lineno, f"not valid JSON: {exc.msg} at column {exc.colno}") from exc


def read_jsonl_path(path: str | Path) -> list[Any]:
    """Parse a JSON-lines file, one value per non-blank line; errors name the file and the 1-based line."""
    return [value for _, value in iter_json_lines(utf8_lines(path), path)]
