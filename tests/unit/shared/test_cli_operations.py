"""The operator commands of `casework`: rebuild, dead letters, parked streams, projections —
found from `casework --help`, run with the service's settings from the environment."""

from __future__ import annotations

import pytest

from casework.cli import build_parser, main


def test_help_lists_the_operator_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("rebuild", "dead-letters", "parked", "projections"):
        assert command in out
    with pytest.raises(SystemExit):
        main(["dead-letters", "--help"])
    out = capsys.readouterr().out
    assert "replay" in out
    assert "discard" in out


def test_discarding_needs_the_streams_or_all() -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["dead-letters", "discard", "cases", "timeline"])
    assert exit_.value.code == 2
    args = build_parser().parse_args(["dead-letters", "discard", "cases", "timeline", "--all"])
    assert (args.service, args.projection, args.streams, args.all) == (
        "cases",
        "timeline",
        None,
        True,
    )


def test_an_unknown_service_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["projections", "payroll"]) == 2
    assert "no service 'payroll'" in capsys.readouterr().err
