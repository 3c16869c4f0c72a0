"""Every `--help` a user can ask for prints its defaults, never a format specifier left as written
(an env-backed option's help is escaped, so `%(default)s` in it printed literally)."""

import argparse

import pytest

from coordinator.__main__ import parse_args as coordinator_args
from coordinator.tools.cli import build_parser
from node.__main__ import parse_args as node_args
from node.shared.config import EnvArgumentParser


def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, (*path, name))


def test_the_processes_help_has_no_format_specifier_left(capsys):
    for parse in (coordinator_args, node_args):
        with pytest.raises(SystemExit) as exit_:
            parse(["--help"])
        out = capsys.readouterr().out
        assert exit_.value.code == 0
        assert out.startswith("usage:") and "%(" not in out and "%%" not in out, out


def test_every_pcpsim_command_help_has_no_format_specifier_left():
    commands = list(_subparsers(build_parser()))
    assert len(commands) > 10  # every command group and its commands
    for path, parser in commands:
        text = parser.format_help()
        assert "%(" not in text and "%%" not in text, (path, text)


def test_an_env_backed_option_with_a_specifier_in_its_help_is_refused_where_it_is_declared():
    p = EnvArgumentParser(environ={})
    with pytest.raises(ValueError, match="takes no %-specifier"):
        p.add_argument("--kernel", env="PCPSIM_KERNEL", default="6.1", help="profile (default %(default)s)")
    p.add_argument("--kernel", env="PCPSIM_KERNEL", default="6.1", help="profile, 100% of CPUs")
    assert "default 6.1" in p.format_help() and "100% of CPUs" in p.format_help()
