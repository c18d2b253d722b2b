"""Shared test fixtures. Tests run offline: Hugging Face and the data layer never touch the network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set at import time, before any test module imports huggingface_hub / datasets (they read these once).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

# The offline mirror of the upstream data files, beside the checkout: <root>/../shared/data.
SHARED_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The shared offline data mirror (laid out as ``<owner>/<repo>/<path>``); skips the test when it is absent."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"shared data mirror not found at {SHARED_DATA_DIR}")
    return SHARED_DATA_DIR


@pytest.fixture(autouse=True)
def _data_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Point the data layer at the shared mirror and at a fresh, empty user cache for every test."""
    if SHARED_DATA_DIR.is_dir():
        monkeypatch.setenv("PANDALM_DATA_DIR", str(SHARED_DATA_DIR))
    else:
        monkeypatch.delenv("PANDALM_DATA_DIR", raising=False)
    monkeypatch.setenv("PANDALM_CACHE_DIR", str(tmp_path_factory.mktemp("pandalm-cache")))
    # A developer's own cache settings must not leak into the tests.
    monkeypatch.delenv("PANDALM_CACHE_PATH", raising=False)
    monkeypatch.delenv("PANDALM_NO_CACHE", raising=False)


@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random PandaLM-format judge (Llama + SentencePiece tokenizer) saved to disk once per session."""
    from lm_eval_pandalm.testing.tiny_models import build_tiny_judge

    return build_tiny_judge(tmp_path_factory.mktemp("tiny") / "judge")


@pytest.fixture(scope="session")
def training_workspace(tmp_path_factory: pytest.TempPathFactory):
    """A factory ``(name, n_train, n_test) -> folder`` holding ``base/`` (a tiny random PandaLM-format judge to train)
    and ``data/`` (``train.jsonl`` and ``test.jsonl`` of the synthetic learnable pairs)."""
    from lm_eval_pandalm.testing.synthetic import main as synthetic_main
    from lm_eval_pandalm.testing.tiny_models import build_tiny_judge

    def make(name: str, n_train: int, n_test: int) -> Path:
        root = tmp_path_factory.mktemp(name)
        build_tiny_judge(root / "base")
        synthetic_main([str(root / "data"), "--train", str(n_train), "--test", str(n_test)])
        return root

    return make
