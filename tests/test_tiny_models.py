"""The tiny offline models: the CLI builds loadable checkpoints, the tokenizer is a real one and splits ``Tie``."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lm_eval_pandalm.prompt import build_prompt  # noqa: E402
from lm_eval_pandalm.testing import tiny_models  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny-cli")
    assert tiny_models.main([str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def tokenizer(built: Path):
    return transformers.AutoTokenizer.from_pretrained(built / "judge")


def test_cli_builds_loadable_candidate_and_judge(built: Path):
    weights = {}
    for name in ("candidate", "judge"):
        folder = built / name
        assert (folder / "model.safetensors").is_file()
        model = transformers.AutoModelForCausalLM.from_pretrained(folder)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        assert type(model).__name__ == "LlamaForCausalLM"
        config = model.config
        assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (64, 2, 4)
        assert config.intermediate_size == 128 and config.max_position_embeddings == 1024
        assert config.vocab_size == len(tokenizer) == tiny_models.VOCAB_SIZE
        assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (0, 1, 2)
        weights[name] = model.lm_head.weight.detach().clone()
        # It generates (the candidate's job).
        inputs = tokenizer(["The river is"], return_tensors="pt")
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=0)
        assert output.shape == (1, inputs["input_ids"].shape[1] + 4) or output[0, -1].item() == 2
    assert not torch.equal(weights["candidate"], weights["judge"])


def test_tokenizer_is_not_empty_and_round_trips_text(tokenizer):
    assert type(tokenizer).__name__ == "LlamaTokenizer"
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (
        0,
        1,
        2,
        0,
    )
    ids = tokenizer("The river and the garden").input_ids
    assert ids[0] == 1 and 2 not in ids and 0 not in ids
    assert tokenizer.convert_ids_to_tokens(ids[1:3]) == ["▁The", "▁river"]  # learned pieces, not bytes
    texts = [
        "Explain how a computer works.\n\nIt is 2024!",
        build_prompt(tiny_models.synthetic_pair_items(1, seed=3, input_rate=1.0)[0]),
        "Unseen letters fall back to bytes: café ☕ Zürich",
        "A tie, a Tie, TIE.",
    ]
    for text in texts:
        ids = tokenizer(text).input_ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.convert_ids_to_tokens(tokenizer("\n", add_special_tokens=False).input_ids)[-1] == "<0x0A>"


def test_tie_is_split_into_several_pieces(tokenizer):
    assert not any("tie" in line.lower() for line in tiny_models.synthetic_corpus())
    for text in ("Tie", "\nTie\n", " Tie"):
        pieces = tokenizer.convert_ids_to_tokens(tokenizer(text, add_special_tokens=False).input_ids)
        assert len([p for p in pieces if p not in ("▁", "<0x0A>")]) >= 2, pieces
    probe = "### Evaluation:\n"
    base = tokenizer(probe, add_special_tokens=False).input_ids
    full = tokenizer(probe + "Tie\n", add_special_tokens=False).input_ids
    assert full[: len(base)] == base and len(full) - len(base) >= 3


def test_builds_are_deterministic(tmp_path: Path, built: Path):
    tiny_models.build_tiny_judge(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (tmp_path / "again" / name).read_bytes() == (built / "judge" / name).read_bytes()
