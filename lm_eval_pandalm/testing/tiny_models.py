"""Tiny, offline stand-ins for PandaLM-7B and for a candidate model, built in-process in seconds.

Nothing here downloads anything: a SentencePiece BPE model is trained on a synthetic English corpus (which includes
PandaLM prompts), loaded as a ``LlamaTokenizer`` exactly as PandaLM's own ``tokenizer.model`` would be, and paired
with a randomly initialised two-layer ``LlamaForCausalLM``. The result is saved with ``save_pretrained`` so that
``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained(dir)`` load it like a Hub checkpoint.

The corpus never contains the letters ``tie`` in a row (in any case), so the verdict word ``Tie`` is split into
several tokens, as in PandaLM's real vocabulary, where it is ``T`` + ``ie``: code that scores the verdict by
likelihood must handle multi-token continuations. Builds are deterministic: same seed, same bytes.

Command line::

    python -m lm_eval_pandalm.testing.tiny_models DIR   # builds DIR/candidate and DIR/judge
"""

from __future__ import annotations

import argparse
import functools
import io
import logging
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..prompt import build_prompt
from ..types import PairItem

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "CANDIDATE_SEED",
    "JUDGE_SEED",
    "build_tiny_candidate",
    "build_tiny_judge",
    "build_tiny_llama",
    "build_tokenizer",
    "main",
    "synthetic_corpus",
    "synthetic_pair_items",
]

logger = logging.getLogger(__name__)

VOCAB_SIZE = 768
"""SentencePiece vocabulary size: 3 special pieces + 256 byte-fallback pieces + about 500 learned pieces."""
JUDGE_SEED = 0
CANDIDATE_SEED = 1
_CORPUS_SEED = 1234

# The verdict word must never be learned as a piece: no word below contains "tie" (checked in synthetic_corpus).
_NOUNS = (
    "river", "mountain", "city", "garden", "computer", "language", "teacher", "student", "market", "ocean",
    "forest", "planet", "engine", "bridge", "library", "museum", "kitchen", "doctor", "farmer", "painter",
    "country", "history", "science", "music", "weather", "energy", "water", "bread", "coffee", "window",
    "network", "system", "problem", "answer", "question", "number", "animal", "child", "family", "letter",
    "summer", "winter", "morning", "evening", "journey", "story", "poem", "recipe", "model", "result",
)  # fmt: skip
_VERBS = (
    "explain", "describe", "write", "list", "compare", "summarize", "translate", "improve", "classify", "name",
    "build", "create", "find", "choose", "plan", "measure", "cook", "visit", "study", "solve",
)  # fmt: skip
_ADJECTIVES = (
    "small", "large", "bright", "quiet", "famous", "simple", "modern", "ancient", "useful", "green",
    "fast", "slow", "happy", "careful", "clear", "short", "long", "warm", "cold", "strong",
)  # fmt: skip
_CONNECTIVES = ("and", "but", "because", "so", "while", "when", "after", "before", "although", "if")
_INSTRUCTIONS = (
    "{Verb} the {adj} {noun} in one sentence.",
    "Write a short poem about a {adj} {noun}.",
    "Give three reasons why the {noun} is {adj}.",
    "Explain how a {noun} works to a child.",
    "Summarize the following text.",
    "Translate the following sentence into French.",
    "Classify the {noun} as {adj} or {adj2}.",
    "What is the capital of the country with the largest {noun}?",
    "Suggest a name for a {adj} {noun}.",
    "Rewrite the sentence to make it more {adj}.",
)
_REASONS = (
    "Response {n} is better because it answers the question directly.",
    "Response {n} is more {adj} and gives a clear answer about the {noun}.",
    "Response {n} follows the instruction, {conn} the other response does not.",
    "Both responses mention the {noun}, {conn} response {n} is more accurate.",
)


def _sentence(rng: random.Random, min_words: int = 6, max_words: int = 14) -> str:
    words: list[str] = []
    for _ in range(rng.randint(min_words, max_words)):
        kind = rng.random()
        if kind < 0.45:
            words.append(rng.choice(_NOUNS))
        elif kind < 0.65:
            words.append(rng.choice(_VERBS))
        elif kind < 0.85:
            words.append(rng.choice(_ADJECTIVES))
        elif kind < 0.95:
            words.append(rng.choice(_CONNECTIVES))
        else:
            words.append(str(rng.randint(0, 2024)))
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice((".", ".", ".", "!", "?"))


def _paragraph(rng: random.Random, min_sentences: int, max_sentences: int) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(min_sentences, max_sentences)))


def _instruction(rng: random.Random) -> str:
    adj, adj2 = rng.sample(_ADJECTIVES, 2)
    verb = rng.choice(_VERBS)
    return rng.choice(_INSTRUCTIONS).format(
        Verb=verb.capitalize(), verb=verb, adj=adj, adj2=adj2, noun=rng.choice(_NOUNS)
    )


def synthetic_pair_items(
    n: int, *, seed: int = 0, min_sentences: int = 1, max_sentences: int = 4, input_rate: float = 0.3
) -> list[PairItem]:
    """Deterministic PandaLM-style pairs made of the tiny tokenizer's vocabulary.

    Args:
        n: Number of items.
        seed: Random seed; the same seed gives the same items.
        min_sentences: Fewest sentences per response.
        max_sentences: Most sentences per response (longer responses give longer prompts).
        input_rate: Fraction of items that carry an ``input`` (PandaLM's with-input prompt variant).

    Returns:
        ``n`` items with distinct content.
    """
    rng = random.Random(seed)
    items = []
    for i in range(n):
        has_input = rng.random() < input_rate
        items.append(
            PairItem(
                instruction=_instruction(rng),
                input=_paragraph(rng, 1, 2) if has_input else "",
                response1=_paragraph(rng, min_sentences, max_sentences),
                response2=_paragraph(rng, min_sentences, max_sentences),
                id=f"synthetic-{seed}-{i}",
            )
        )
    return items


def synthetic_corpus(n_items: int = 300, *, seed: int = _CORPUS_SEED) -> list[str]:
    """Lines of the tokenizer's training corpus: PandaLM prompts, PandaLM-style outputs and plain sentences.

    Lines never contain a newline (so ``\\n`` falls back to the byte piece ``<0x0A>``, as in Llama's vocabulary) and
    never contain ``tie`` in any case (so ``Tie`` is several pieces).

    Raises:
        RuntimeError: If a line breaks either rule (a word list was edited carelessly).
    """
    rng = random.Random(seed)
    lines: list[str] = []
    for item in synthetic_pair_items(n_items, seed=seed):
        lines.extend(line for line in build_prompt(item).split("\n") if line)
        n = rng.choice(("1", "2"))
        lines.append(n)
        reason = rng.choice(_REASONS).format(
            n=n, adj=rng.choice(_ADJECTIVES), noun=rng.choice(_NOUNS), conn=rng.choice(_CONNECTIVES)
        )
        lines.append(f"### Reason: {reason}")
        lines.append(f"### Reference: {_sentence(rng)}")
    lines.extend(_paragraph(rng, 2, 5) for _ in range(n_items))
    bad = [line for line in lines if "tie" in line.lower() or "\n" in line]
    if bad:
        raise RuntimeError(f"synthetic corpus line contains 'tie' or a newline: {bad[0]!r}")
    return lines


@functools.cache
def _tokenizer_model_bytes(vocab_size: int = VOCAB_SIZE, seed: int = _CORPUS_SEED) -> bytes:
    """Train the SentencePiece model once per process (deterministic: single thread, fixed seeds)."""
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(synthetic_corpus(seed=seed)),
        model_writer=buffer,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        # Llama's settings: no normalisation, a dummy prefix space, whitespace kept as is.
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,  # PandaLM pads with id 0 (<unk>); no separate pad piece
        num_threads=1,
        minloglevel=2,
    )
    return buffer.getvalue()


def build_tokenizer(directory: str | Path) -> PreTrainedTokenizerBase:
    """Train (or reuse) the tiny SentencePiece model and save it as a Llama tokenizer in ``directory``.

    The tokenizer adds BOS (id 1) and no EOS (id 2), and pads with id 0 (``<unk>``), as PandaLM does.

    Returns:
        The tokenizer, as loaded by ``LlamaTokenizer.from_pretrained``.

    Raises:
        RuntimeError: If the loaded tokenizer does not reproduce the SentencePiece vocabulary (transformers builds an
            empty vocabulary silently when it is handed a ``.model`` file the wrong way).
    """
    from transformers import LlamaTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_bytes = _tokenizer_model_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tokenizer.model").write_bytes(model_bytes)
        tokenizer = LlamaTokenizer.from_pretrained(tmp, add_bos_token=True, add_eos_token=False)
        tokenizer.pad_token = tokenizer.unk_token
        _check_tokenizer(tokenizer)
        tokenizer.save_pretrained(directory)
    return tokenizer


def _check_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = tokenizer("The river and the garden.\n").input_ids
    problems = []
    if len(tokenizer) != VOCAB_SIZE:
        problems.append(f"vocabulary has {len(tokenizer)} entries, expected {VOCAB_SIZE}")
    if ids[0] != 1 or tokenizer.eos_token_id in ids:
        problems.append(f"expected BOS first and no EOS, got {ids}")
    if tokenizer.unk_token_id in ids[1:] or len(ids) > 20:
        problems.append(f"text was not tokenized into learned pieces: {tokenizer.convert_ids_to_tokens(ids)}")
    if (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) != (0, 1, 2):
        problems.append(
            f"special ids pad/bos/eos are {tokenizer.pad_token_id}/{tokenizer.bos_token_id}/{tokenizer.eos_token_id}"
        )
    if problems:
        raise RuntimeError("tiny tokenizer is broken: " + "; ".join(problems))


def build_tiny_llama(
    directory: str | Path,
    *,
    seed: int = JUDGE_SEED,
    max_position_embeddings: int = 1024,
    initializer_range: float = 0.2,
) -> Path:
    """Save the tiny tokenizer and a random two-layer ``LlamaForCausalLM`` (safetensors) into ``directory``.

    Args:
        directory: Where to save; created if missing.
        seed: Seed of the weight initialisation; same seed, same weights.
        max_position_embeddings: The model's context window.
        initializer_range: Std of the random weights. Larger than Llama's 0.02 so that the random model has
            opinions (non-uniform next-token distributions), which makes numerical tests meaningful.

    Returns:
        ``directory`` as a :class:`~pathlib.Path`.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory = Path(directory)
    tokenizer = build_tokenizer(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=max_position_embeddings,
        initializer_range=initializer_range,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
    )
    # fork_rng: seed the initialisation without disturbing the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = 0
    model.generation_config.bos_token_id = 1
    model.generation_config.eos_token_id = 2
    model.save_pretrained(directory)
    logger.info("built tiny Llama (seed %d, %d parameters) in %s", seed, model.num_parameters(), directory)
    return directory


def build_tiny_judge(directory: str | Path) -> Path:
    """The tiny stand-in for PandaLM-7B (seed :data:`JUDGE_SEED`)."""
    return build_tiny_llama(directory, seed=JUDGE_SEED)


def build_tiny_candidate(directory: str | Path) -> Path:
    """A tiny candidate model to generate responses with (same architecture, seed :data:`CANDIDATE_SEED`)."""
    return build_tiny_llama(directory, seed=CANDIDATE_SEED)


def main(argv: Sequence[str] | None = None) -> int:
    """Build ``DIR/candidate`` and ``DIR/judge``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m lm_eval_pandalm.testing.tiny_models",
        description="Build tiny offline candidate and judge models (Llama architecture) for tests and demos.",
    )
    parser.add_argument("directory", type=Path, help="output folder; DIR/candidate and DIR/judge are created")
    args = parser.parse_args(argv)
    candidate = build_tiny_candidate(args.directory / "candidate")
    judge = build_tiny_judge(args.directory / "judge")
    print(f"candidate: {candidate}\njudge: {judge}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
