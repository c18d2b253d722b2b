"""Every `pandalm` subcommand's --help describes it, explains every option and shows the defaults.

Issue 6 (hardening), item 9: the help is what a user reads first, so it is checked for every command in COMMANDS
(a new command is covered without editing this file).
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys

import pytest

from lm_eval_pandalm.cli import COMMANDS, main, make_parser


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = make_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_every_command_module_is_a_subcommand() -> None:
    names = [importlib.import_module(f"lm_eval_pandalm.cli.{module}").NAME for module in COMMANDS]
    assert sorted(_subparsers()) == sorted(names)


@pytest.mark.parametrize("module_name", COMMANDS)
def test_help_describes_the_command_and_shows_defaults(module_name: str, capsys: pytest.CaptureFixture) -> None:
    module = importlib.import_module(f"lm_eval_pandalm.cli.{module_name}")
    assert module.HELP.strip() and module.DESCRIPTION.strip(), f"{module_name}: HELP and DESCRIPTION must say something"
    with pytest.raises(SystemExit) as exited:
        main([module.NAME, "--help"])
    assert exited.value.code == 0
    shown = _flat(capsys.readouterr().out)
    assert shown.startswith(f"usage: pandalm {module.NAME}")
    assert _flat(module.DESCRIPTION.split("\n\n")[0]) in shown

    for action in _subparsers()[module.NAME]._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        flag = max(action.option_strings, key=len)
        assert action.help and action.help.strip(), f"pandalm {module.NAME} {flag} has no help text"
        if action.default not in (None, False, argparse.SUPPRESS, [], ""):
            assert f"(default: {_flat(str(action.default))})" in shown, (
                f"pandalm {module.NAME} --help hides {flag}'s default"
            )


def test_the_console_script_lists_every_command() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "lm_eval_pandalm.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name, parser in _subparsers().items():
        assert name in shown
        assert parser.description, f"pandalm {name} has no description"
