"""Offline stand-ins for tests and demos; nothing here downloads anything.

* :mod:`~lm_eval_pandalm.testing.fakes`: deterministic fake judges (no model at all).
* :mod:`~lm_eval_pandalm.testing.tiny_models`: a tiny random Llama judge and candidate with a real SentencePiece
  tokenizer, built in-process in seconds (``python -m lm_eval_pandalm.testing.tiny_models DIR``).

Importing this package is cheap: each module imports torch or transformers only when it is itself imported.
"""
