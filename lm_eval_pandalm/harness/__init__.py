"""The lm-eval adapter: task datasets, the judge filter, win-rate metrics, the replay model, registration.

Importing this package registers the filter (``pandalm_judge``), the ``pandalm_*`` win-rate metrics and the
``pandalm-replay`` model with lm-eval, after lm-eval's own built-ins (see :mod:`.registration`). The core of
lm_eval_pandalm never imports lm-eval; only this package does.
"""

from .registration import FILTER_NAME, MODEL_NAME, register, tasks_dir

register()

__all__ = ["FILTER_NAME", "MODEL_NAME", "register", "tasks_dir"]
