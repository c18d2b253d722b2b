"""Offline stand-ins for tests and demos; nothing here downloads anything.

* :mod:`~lm_eval_pandalm.testing.fakes`: deterministic fake judges (no model at all).
* :mod:`~lm_eval_pandalm.testing.tiny_models`: a tiny random Llama judge and candidate with a real SentencePiece
  tokenizer, built in-process in seconds (``python -m lm_eval_pandalm.testing.tiny_models DIR``).
* :mod:`~lm_eval_pandalm.testing.openai_server`: a real OpenAI-compatible HTTP server on 127.0.0.1 with injectable
  latency and faults, answering from a judge or a local model (:mod:`~lm_eval_pandalm.testing.openai_responders`).

Importing this package is cheap: each module imports torch or transformers only when it is itself imported.
"""
