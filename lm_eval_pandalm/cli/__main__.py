"""``python -m lm_eval_pandalm.cli`` is the ``pandalm`` command."""

import sys

from . import main

sys.exit(main())
