"""``python -m lm_eval_pandalm.training``: train a judge (also under ``accelerate launch -m``)."""

from __future__ import annotations

import logging
import sys

from ..errors import report
from .train import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(report("python -m lm_eval_pandalm.training", lambda: main(sys.argv[1:]), debug=False))
