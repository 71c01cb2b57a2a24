"""The sandbox fires the stack's EventBridge schedules (moto never does)."""

import threading

from sandbox.emulator.schedules import Scheduler, rate_seconds, schedule_runs, schedules

TEMPLATE = {
    "Resources": {
        "Every": {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {
                "ScheduleExpression": "rate(1 minute)",
                "State": "ENABLED",
                "Target": {"Arn": {"Fn::GetAtt": ["ReconcilerFunction", "Arn"]}},
            },
        },
        "Nightly": {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {"ScheduleExpression": "cron(0 3 * * ? *)", "Target": {"Arn": "arn:x"}},
        },
        "Off": {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {"ScheduleExpression": "rate(5 minutes)", "State": "DISABLED", "Target": {"Arn": "x"}},
        },
    }
}


def test_rate_expressions_are_read_and_others_are_not():
    assert [rate_seconds(e) for e in ("rate(1 minute)", "rate(5 minutes)", "rate(2 hours)", "cron(* * * * ? *)")] == [
        60,
        300,
        7200,
        None,
    ]


def test_an_enabled_rate_schedule_fires_its_target_every_period_scaled_and_the_rest_are_reported():
    # GIVEN the template's three schedules, at time scale 600 (a minute is 0.1 s)
    fired: list[tuple[str, str]] = []
    three = threading.Event()

    def invoke(target: str, payload: str) -> dict:
        fired.append((target, payload))
        if len(fired) == 3:
            three.set()
        return {"found": 1, "adopted": 0} if len(fired) != 2 else {"error": "boom"}

    scheduler = Scheduler(schedules(TEMPLATE), invoke, k=600)
    scheduler.start()
    try:
        assert three.wait(5)
    finally:
        scheduler.close()
    # THEN the reconciler's function fired (no retries), the cron and disabled ones were not, and said so
    assert fired[:3] == [("ReconcilerFunction", "{}")] * 3
    runs = schedule_runs(scheduler)
    assert runs["Every"]["runs"] >= 3 and runs["Every"]["errors"] == 1 and runs["Every"]["found"] >= 2
    assert {k for k, v in runs.items() if v.get("not_fired")} == {
        "Nightly (cron(0 3 * * ? *))",
        "Off (rate(5 minutes), disabled)",
    }
