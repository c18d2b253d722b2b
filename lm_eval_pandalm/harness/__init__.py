"""The lm-eval adapter: task datasets, the judge filter, win-rate metrics, the replay model, registration.

This package imports lm-eval; the core of lm_eval_pandalm never does.
"""
