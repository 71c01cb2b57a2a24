"""One argument parser for every sandbox command: bad input is one line and exit 2, before anything starts."""

from __future__ import annotations

import pytest

from sandbox.cli import parse


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-c", "maxTasks=abc"], "context key 'maxTasks' = 'abc': expected an integer from 1 to 1000"),
        (["-c", "maxTaks=5"], "did you mean 'maxTasks'?"),
        (["-c", "maxTasks"], "-c expects KEY=VALUE"),
        (["up", "-c", "compute=ecs", "-c", "lambdaTrigger=sns"], "lambdaTrigger"),
        (["compare", "-c", "batchSize=0"], "batchSize"),
        (["--time-scale", "0.5"], "--time-scale must be >= 1"),
        (["--users", "0"], "--users must be > 0"),
        (["--duration", "-1"], "--duration must be > 0"),
        (["--compute", "k8s"], "invalid choice: 'k8s'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_a_sale_is_the_default_command_and_its_options_are_the_runs() -> None:
    args = parse(["--compute", "ecs", "--duration", "15", "-c", "backlogPerTaskTarget=20"])
    assert (args.command, args.compute, args.duration_s, args.context) == (
        "sale",
        "ecs",
        15.0,
        {"backlogPerTaskTarget": "20"},
    )
    assert parse(["deploy-local", "-c", "maxTasks=3"]).context == {"maxTasks": "3"}
