"""The ``idnode`` command line as a user reads it: --version, help with defaults, the
messages of wrong settings, ``check --list``."""

from __future__ import annotations

import argparse

import pytest

from node.cli import _parser, main
from node.config import NodeConfig
from registry.errors import ConfigError


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _commands(sub).items()})
    return found


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("idnode 0.")


@pytest.mark.parametrize("name", sorted(_commands(_parser())))
def test_every_option_has_help_that_shows_its_default(name: str) -> None:
    command = _commands(_parser())[name]
    text = command.format_help()
    for action in command._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        option = action.option_strings[0] if action.option_strings else action.dest
        assert action.help, f"idnode {name} {option} has no help"
        takes_value = action.nargs != 0
        if takes_value and not action.required:
            rendered = command._get_formatter()._format_action(action)
            assert "default" in rendered or "required" in rendered, f"{name} {option}"
    assert "%(default)" not in text


@pytest.mark.parametrize(
    ("command", "option", "shown"),
    [
        ("serve", "--role", "(required)"),
        ("serve", "--appendfsync", "(default always)"),
        ("bench", "--scenario", "(default: resolve)"),
        ("bench", "--shape", "(default: day)"),
        ("bench", "--plan", "(default: wuhan-5g-2021)"),
        ("bench", "--error-budget", "(default: 0.001)"),
        ("up", "--port-base", "8000-8010 for the demo"),
        ("up", "--log-dir", "(default .idnode/logs/<timestamp>)"),
    ],
)
def test_the_options_named_in_the_issue_say_their_default(
    command: str, option: str, shown: str
) -> None:
    parser = _commands(_parser())[command]
    action = next(a for a in parser._actions if option in a.option_strings)
    rendered = " ".join(parser._get_formatter()._format_action(action).split())
    assert shown in rendered


def test_a_missing_prefix_is_named_once() -> None:
    with pytest.raises(ConfigError) as caught:
        NodeConfig.from_sources({"role": "secondary"}, {})
    assert caught.value.message == ("missing setting 'prefix': pass --prefix or set IDNODE_PREFIX")
    with pytest.raises(ConfigError, match=r"^setting 'prefix': "):  # a wrong one still is
        NodeConfig.from_sources({"role": "secondary", "prefix": "88..1"}, {})


def test_check_list_names_the_plans_and_check_needs_a_plan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["check", "--list"])
    assert done.value.code == 0
    listed = capsys.readouterr().out
    for plan in ("guangzhou-2018", "tianjin-2021", "wuhan-5g-2021", "wuhan-digital-2020"):
        assert plan in listed
    with pytest.raises(SystemExit) as done:
        main(["check"])
    assert done.value.code == 2
    assert "--plan" in capsys.readouterr().err
