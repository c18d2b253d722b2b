"""The packed attention of padding-free training: the padded batch's loss and gradients, without a row-wide mask."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from transformers import DataCollatorForSeq2Seq, DataCollatorWithFlattening

from lm_eval_pandalm.training.encoding import setup_tokenizer
from lm_eval_pandalm.training.packed_attention import PACKED_SDPA, register_packed_sdpa


def _features(lengths: tuple[int, ...]) -> list[dict[str, list[int]]]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for n in lengths:
        ids = [1, *torch.randint(3, 700, (n,), generator=gen).tolist()]
        out.append({"input_ids": ids, "labels": [-100] * 3 + ids[3:]})
    return out


def _model(folder: Path, attn: str) -> transformers.PreTrainedModel:
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attn)
    model.train()
    return model


@pytest.mark.parametrize("offsets", [True, False], ids=["cu_seq_lens", "position_ids"])
def test_packed_batch_gives_padded_loss_and_gradients(tiny_judge_dir: Path, offsets: bool) -> None:
    assert register_packed_sdpa() == PACKED_SDPA
    tokenizer = setup_tokenizer(transformers.AutoTokenizer.from_pretrained(tiny_judge_dir))
    features = _features((5, 40, 17, 90))
    padded = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)(features)
    flat = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100, return_flash_attn_kwargs=offsets)(
        features
    )
    reference, packed = _model(tiny_judge_dir, "sdpa"), _model(tiny_judge_dir, PACKED_SDPA)
    want = reference(**padded, use_cache=False).loss
    got = packed(**flat, use_cache=False).loss
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    want.backward()
    got.backward()
    pairs = zip(reference.parameters(), packed.parameters(), strict=True)
    worst = max(float((a.grad - b.grad).abs().max()) for a, b in pairs)
    assert worst < 1e-5
    # The packed examples are kept apart: the row's loss is not that of one 152-token sequence.
    joined = {"input_ids": flat["input_ids"], "labels": flat["labels"]}
    assert abs(packed(**joined, use_cache=False).loss.item() - got.item()) > 1e-3
    # A padded batch through the packed implementation is transformers' SDPA unchanged.
    assert packed(**padded, use_cache=False).loss.item() == pytest.approx(want.item(), rel=1e-6)


def test_packed_attention_builds_no_row_wide_mask(tiny_judge_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers.integrations import sdpa_attention

    register_packed_sdpa()
    seen: list[tuple[int, object]] = []
    original = sdpa_attention.sdpa_attention_forward

    def spy(module, query, key, value, attention_mask, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((query.shape[2], attention_mask))
        return original(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setattr(sdpa_attention, "sdpa_attention_forward", spy)
    flat = DataCollatorWithFlattening(return_position_ids=True, separator_id=-100, return_flash_attn_kwargs=True)(
        _features((5, 40, 17))
    )
    with torch.no_grad():
        _model(tiny_judge_dir, PACKED_SDPA)(**flat, use_cache=False)
    assert seen == [(6, None), (41, None), (18, None)] * 2  # per example, per layer, no mask


def test_padding_free_with_a_cache_is_refused_and_attention_follows_the_batches(tmp_path: Path) -> None:
    from lm_eval_pandalm.config import ConfigError
    from lm_eval_pandalm.training.config import parse_config
    from lm_eval_pandalm.training.train import attention_implementation

    base = ["--model_name_or_path", "m", "--train_file", "t", "--output_dir", str(tmp_path)]
    with pytest.raises(ConfigError, match="padding_free cannot be used with use_cache true"):
        parse_config([*base, "--use_cache", "true"])
    assert attention_implementation(parse_config(base)) == PACKED_SDPA
    assert attention_implementation(parse_config([*base, "--padding_free", "false"])) == "sdpa"
    assert attention_implementation(parse_config([*base, "--attn_implementation", "eager"])) == "eager"
