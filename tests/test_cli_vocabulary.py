"""One vocabulary across the whole ``driftline`` command tree, with help on every option.

Walks every (sub)command parser of ``driftline --help``: any option or argument without help
fails, any command that spells a shared concept differently fails, and the old spellings must
still parse (as hidden aliases) while saying on stderr that they are deprecated."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftline.cli import build_parser
from driftline.cli.options import PROBA_HELP, PROBA_METAVAR, is_alias


def _commands(parser: argparse.ArgumentParser,
              path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        yield action


TREE = list(_commands(build_parser()))


def test_the_walk_sees_the_whole_tree() -> None:
    names = {" ".join(path) for path, _ in TREE}
    assert {"baseline build", "baseline show", "analyze", "replay", "serve", "actions serve",
            "actions log", "rules generate", "dashboards push", "changes", "demo"} <= names


def test_every_option_argument_and_command_has_help() -> None:
    missing = []
    for path, parser in TREE:
        for action in _options(parser):
            if is_alias(action):
                continue
            text = action.help
            if not text or text == argparse.SUPPRESS or not str(text).strip():
                missing.append(f"driftline {' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                missing += [f"driftline {' '.join(path)} {n} (command)"
                            for n in action.choices if n not in helped]
    assert not missing, "no help text:\n" + "\n".join(missing)


#: concept (argparse dest) -> the one visible spelling every command uses
CANONICAL = {
    "target": {"--target"},
    "proba": {"--proba"},
    "prediction": {"--prediction"},
    "timestamp": {"--timestamp"},
    "id": {"--id"},
    "model_name": {"--model-name"},
    "model_version": {"--model-version"},
    "log_level": {"--log-level"},
    "output": {"--output", "-o"},
    "output_dir": {"--output-dir"},
    "format": {"--format"},
    "progress": {"--progress", "--no-progress"},
    "quiet": {"--quiet", "-q"},
    "url": {"--url"},
    "db": {"--db"},
    "config": {"--config", "-c"},
}
#: spellings that must not be visible anywhere (kept only as hidden aliases)
RETIRED = {"--label", "--to", "--out", "--json", "--labels", "--probabilities"}


def test_shared_concepts_have_one_spelling_in_every_command() -> None:
    wrong, seen = [], {k: 0 for k in CANONICAL}
    for path, parser in TREE:
        for action in _options(parser):
            if is_alias(action) or not action.option_strings:
                continue
            where = f"driftline {' '.join(path)} {'/'.join(action.option_strings)}"
            if RETIRED & set(action.option_strings):
                wrong.append(f"{where}: a retired spelling is visible")
            if action.dest in CANONICAL:
                seen[action.dest] += 1
                if set(action.option_strings) != CANONICAL[action.dest]:
                    wrong.append(f"{where}: spell it {sorted(CANONICAL[action.dest])}")
            if action.dest == "proba" and (action.metavar, action.help) != (PROBA_METAVAR,
                                                                           PROBA_HELP):
                wrong.append(f"{where}: not the shared --proba form")
    assert not wrong, "\n".join(wrong)
    assert all(seen[k] for k in ("target", "proba", "log_level", "output", "format", "progress"))


@pytest.mark.parametrize("argv", [["serve"], ["actions", "serve"]])
@pytest.mark.parametrize("level", ["INFO", "info", "Warning", "DEBUG"])
def test_log_level_takes_any_case_everywhere(argv: list[str], level: str) -> None:
    args = build_parser().parse_args([*argv, "--log-level", level])
    assert args.log_level == level.lower()


def test_log_level_refuses_an_unknown_level(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--log-level", "verbose"])
    assert "in any case" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "dest", "value", "note"), [
    (["replay", "d.csv", "--model-name", "m", "--label", "y"], "target", "y", "--target"),
    (["replay", "d.csv", "--model-name", "m", "--to", "http://h:1"], "url", "http://h:1", "--url"),
    (["baseline", "build", "d.csv", "-o", "b.json", "--label", "y"], "target", "y", "--target"),
    (["baseline", "show", "b.json", "--json"], "format", "json", "--format json"),
    (["actions", "log", "--json"], "format", "json", "--format json"),
    (["actions", "pending", "--json"], "format", "json", "--format json"),
    (["actions", "export", "--out", "x.jsonl"], "output", "x.jsonl", "--output"),
    (["rules", "generate", "--out", "r"], "output_dir", Path("r"), "--output-dir"),
    (["dashboards", "generate", "--out", "d"], "output_dir", Path("d"), "--output-dir"),
])
def test_old_spellings_still_work_and_say_they_are_deprecated(
        argv: list[str], dest: str, value: object, note: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert "deprecated" in err and note in err


def test_defaults_survive_the_aliases() -> None:
    args = build_parser().parse_args(["baseline", "show", "b.json"])
    assert args.format == "table"
    args = build_parser().parse_args(["replay", "d.csv", "--model-name", "m"])
    assert args.url == "http://127.0.0.1:9108" and args.target is None


def test_replay_takes_the_proba_form_of_baseline_build(capsys: pytest.CaptureFixture[str]) -> None:
    from driftline.collectors.cli import _proba_columns
    from driftline.collectors.replay import ReplayColumns, ingest_body

    cols = ReplayColumns(prediction="pred", **_proba_columns("a=pa,b=pb"))
    body = ingest_body([{"x": 1.0, "pred": "a", "pa": 0.7, "pb": 0.3}], model_name="m",
                       columns=cols)
    assert body["records"][0] == {"features": {"x": 1.0}, "prediction": "a",
                                  "probabilities": {"a": 0.7, "b": 0.3}}
    assert _proba_columns("p") == {"probabilities": ("p",)}
    assert capsys.readouterr().err == ""
    assert _proba_columns("p0,p1") == {"probabilities": ("p0", "p1")}  # the old replay form
    assert "deprecated" in capsys.readouterr().err
