"""The ``pandalm`` command line: one module per subcommand, listed in :data:`COMMANDS`.

``pandalm meta``       evaluate a judge against human labels on a benchmark;
``pandalm judge``      judge arbitrary pairs from a JSONL file;
``pandalm score``      judge the samples of a finished ``lm_eval --log_samples`` run (two-stage scoring);
``pandalm tasks-dir``  print the folder of the package's lm-eval tasks (for ``lm_eval --include_path``);
``pandalm spend``      summarise what API judges spent, from the spend ledger.
``pandalm calibrate``  fit an escalation cascade's policy on labelled benchmarks (Trust-or-Escalate thresholds);
``pandalm export-escalations``  write the pairs a cascade escalated, judged by its last stage, as training data;
``pandalm compare``    rank N candidates with a judge (Bradley-Terry ratings with bootstrap intervals);
``pandalm submit``     per-candidate lm-eval results with a judge card, pushable with lm-eval's Hub tracker;
``pandalm train``      fine-tune a judge (generative or classifier) on PandaLM-format training data.

:mod:`.cascade_options` is not a subcommand: it holds the ``--dry-run`` / ``--plot`` options and the cascade
figures that ``pandalm meta`` and ``pandalm judge`` share.

A subcommand module defines ``NAME``, ``HELP`` (one line for the command list), ``DESCRIPTION`` (the ``--help``
text), ``add_arguments(parser)`` and ``run(args) -> int``; adding a command is one module and one entry in
:data:`COMMANDS`. Known errors (bad input, unusable files, judges that cannot be loaded) are printed as one line with
exit status 2, Ctrl-C exits with 130 after saying what is safe in the judgment cache, and ``--debug`` (or
``PANDALM_DEBUG=1``) shows tracebacks (see :mod:`lm_eval_pandalm.errors`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from ..errors import report
from .common import HelpFormatter

__all__ = ["COMMANDS", "main", "make_parser"]

COMMANDS: tuple[str, ...] = (
    "meta",
    "judge",
    "score",
    "tasks_dir",
    "spend",
    "calibrate",
    "export_escalations",
    "compare",
    "submit",
    "train",
)
"""Subcommand modules of this package, in the order ``pandalm --help`` lists them."""


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{name}") for name in COMMANDS]


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pandalm`` command."""
    parser = argparse.ArgumentParser(
        prog="pandalm",
        description="PandaLM-style pairwise judging for lm-eval: meta-evaluate judges, judge pairs, score runs.",
        formatter_class=HelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _modules():
        command = sub.add_parser(
            module.NAME, help=module.HELP, description=module.DESCRIPTION, formatter_class=HelpFormatter
        )
        command.set_defaults(_run=module.run)
        module.add_arguments(command)
        command.add_argument(
            "--debug", action="store_true", help="show tracebacks of errors (also: environment PANDALM_DEBUG=1)"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pandalm`` console script; returns the exit status."""
    args = make_parser().parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(getattr(args, "verbose", 0), 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )

    def interrupted() -> str:
        from ..wrappers.cache import cache_report

        return cache_report()

    return report(f"pandalm {args.command}", lambda: args._run(args), debug=args.debug, on_interrupt=interrupted)


if __name__ == "__main__":
    sys.exit(main())
