"""The command line: every documented command exists, bad input is one line and exit status 2."""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from d2m.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["data", "run", "train", "evaluate", "generate", "ablate", "bench", "import-original"]


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "d2m", "--help"], capture_output=True, text=True, check=True).stdout
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["run", "tiny", "trainer.acelerator=cpu"], "trainer.acelerator"),
        (["run", "no-such-config"], "config file not found"),
        (["train", "style", "tiny", "style.arch=huge"], "choices: original, improved"),
        (["evaluate", "/no/such/run"], "run directory not found"),
        (["ablate", "no-such-matrix"], "matrix file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("d2m: error:") and needle in err
    assert len(err.splitlines()) == 1


def test_readme_commands_and_make_targets_exist():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z][\w-]*):", makefile, flags=re.M))
    for target in re.findall(r"make ([a-z][\w-]*)", readme):
        assert target in targets, f"README names make target '{target}' that the Makefile lacks"
    parser = build_parser()
    known = set(parser._subparsers._group_actions[0].choices)  # the documented subcommands
    for command in re.findall(r"^\s*d2m ([a-z][\w-]*)", readme, flags=re.M):
        assert command in known, f"README names 'd2m {command}' that the command line lacks"


def _commands(parser, prefix=()):
    """Every (sub)command parser, with its path: ('data', 'synth'), ('run',), ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _commands(sub, (*prefix, name))


def test_every_option_of_every_command_has_help_with_its_default():
    commands = list(_commands(build_parser()))
    assert {path[0] for path, _ in commands} >= set(COMMANDS)
    for path, parser in commands:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            where = f"d2m {' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), f"{where} has no help text"
            shown = formatter._expand_help(action) if action.help else ""
            if action.option_strings and action.default not in (None, False) and not action.required:
                assert f"(default: {action.default})" in shown, f"{where}: help does not show its default"
            if action.option_strings and action.default is None and not action.required:
                assert "(default: " in shown, f"{where}: help does not say what happens without it"


def test_data_prepare_help_says_what_it_does():
    out = subprocess.run([sys.executable, "-m", "d2m", "data", "prepare", "--help"], capture_output=True, text=True,
                         check=True, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "canonical dataset" in out and "data.source=canonical" in out
    assert "OpenPose" in out and "15 fps" in out


@pytest.mark.parametrize("command", [["run", "tiny"], ["train", "style", "tiny"], ["ablate", "demo"], ["bench"],
                                     ["generate", "--run", "r", "--audio", "a", "--out", "o.npy"]])
def test_long_commands_take_quiet(command):
    args = build_parser().parse_args([*command, "--quiet"])
    assert args.quiet is True
