"""The live stack's pieces that need no emulator: policy diffs, adopting a policy, the one-stack lock, the view."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from sandbox.emulator.ecs import EcsService
from sandbox.emulator.process import Scale
from sandbox.runs import live
from sandbox.runs.watch import render
from sandbox.stack.specs import ScalingPolicy


def policy(**overrides: Any) -> ScalingPolicy:
    base: dict[str, Any] = {
        "min_tasks": 0,
        "max_tasks": 10,
        "target": 100.0,
        "scale_out_cooldown_s": 60.0,
        "scale_in_cooldown_s": 300.0,
        "wake_depth": 1,
        "wake_steps": [(0.0, None, 1)],
    }
    return ScalingPolicy(**{**base, **overrides})


class FakeQueue:
    def __init__(self, visible: int) -> None:
        self.visible = visible

    def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(self.visible),
                "ApproximateNumberOfMessagesNotVisible": "0",
            }
        }


def service(tmp_path: Path, p: ScalingPolicy, visible: int) -> EcsService:
    svc = EcsService(
        env={},
        command=["python", "-c", "import time; time.sleep(30)"],
        stop_timeout_s=1,
        policy=p,
        sqs=FakeQueue(visible),
        queue_url="q",
        scale=Scale(1),
        log_dir=tmp_path,
    )
    return svc


def test_policy_changes_are_named_by_the_context_key_ops_set() -> None:
    assert policy().changes(policy(target=20.0, max_tasks=4)) == [
        "backlogPerTaskTarget 100 -> 20",
        "maxTasks 10 -> 4",
    ]
    assert policy().changes(policy()) == []


def test_an_adopted_target_is_the_one_the_next_evaluations_scale_on(tmp_path: Path) -> None:
    # GIVEN one running task, 30 messages waiting and a target of 100 per task: no scale-out
    svc = service(tmp_path, policy(min_tasks=1, scale_out_cooldown_s=0), visible=30)
    try:
        svc._set(1, "test")
        for n in range(4):
            svc.evaluate(at=float(n))
        assert svc.desired == 1
        # WHEN the target becomes 10
        assert svc.update_policy(policy(min_tasks=1, target=10.0, scale_out_cooldown_s=0)) == [
            "backlogPerTaskTarget 100 -> 10"
        ]
        # THEN three datapoints later (the policy's alarms start over) it asks for 30 / 10 = 3 tasks
        for n in range(4, 7):
            svc.evaluate(at=float(n))
        assert svc.desired == 3
        assert "target 10" in svc.activities[-1][3]
    finally:
        svc.close()


def test_a_lower_max_tasks_applies_at_once(tmp_path: Path) -> None:
    svc = service(tmp_path, policy(min_tasks=0), visible=0)
    try:
        svc._set(3, "test")
        svc.update_policy(policy(max_tasks=2))
        assert svc.desired == 2 and svc.running() == 2
    finally:
        svc.close()


def test_one_live_stack_per_state_directory(tmp_path: Path) -> None:
    first, second = live.UpLock(tmp_path), live.UpLock(tmp_path)
    assert first.acquire()
    try:
        assert not second.acquire()
        assert second.held_elsewhere()
    finally:
        first.release()
    assert second.acquire()
    second.release()


def test_no_stack_up_means_no_state_even_if_old_files_remain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_STATE_DIR", str(tmp_path))
    (tmp_path / "stack.json").write_text('{"pid": 1}')  # left by a stack that was killed -9
    (tmp_path / "context.json").write_text("{}")
    assert live.read_state() is None
    with pytest.raises(live.SandboxError, match="no local stack is up"):
        live.require_state()


def frame(renderable: Any) -> str:
    console = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def test_the_view_shows_the_pipeline_and_the_active_settings() -> None:
    status = {
        "at": time.time(),
        "compute": "ecs",
        "time_scale": 2.0,
        "visible": 40,
        "in_flight": 7,
        "dlq": 1,
        "workers": 3,
        "paid_per_s": 4.5,
        "charges": 120,
        "double_charges": 0,
        "accepted": 167,
        "params": {"backlogPerTaskTarget": 20.0, "maxTasks": 10},
        "changes": [{"at": time.time(), "message": "target tracking: backlogPerTaskTarget 100 -> 20"}],
        "activities": [{"from": 1, "to": 3, "why": "target tracking: backlog 47 / target 20"}],
    }
    text = frame(render(status, {"api_url": "http://127.0.0.1:9"}))
    assert "47" in text and "backlogPerTaskTarget" in text and "4.5" in text
    assert "100 -> 20" in text and "1 -> 3 tasks" in text
    assert "no local stack is up" in frame(render(None, None))


def test_a_closed_service_leaves_no_task_and_starts_none(tmp_path: Path) -> None:
    # GIVEN a service whose scheduler keeps two tasks running and samplers reading it from other threads
    import threading

    svc = service(tmp_path, policy(min_tasks=2), visible=0)
    svc.start()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            svc.running()

    readers = [threading.Thread(target=sample) for _ in range(3)]
    for r in readers:
        r.start()
    try:
        started = list(svc.tasks)
        svc.kill(1)  # the scheduler replaces it while the readers filter the list
        time.sleep(1.0)
        started += list(svc.tasks)
    finally:
        stop.set()
        for r in readers:
            r.join()
        svc.close()
    # THEN every process it ever started has exited, and a late scheduler pass starts nothing
    assert all(t.poll() is not None for t in started)
    svc.desired = 3
    assert svc.replace_stopped() == 0 and svc.tasks == []


def lambda_spec(compute: str = "lambda-sqs", *, batch: int = 5, reserved: int | None = 10, env: str = "a") -> Any:
    from sandbox.stack.specs import LambdaSpec

    return LambdaSpec(
        function={"FunctionName": "worker", "Timeout": 30, "MemorySize": 512, "Environment": {"Variables": {"X": env}}},
        compute=compute,
        reserved=reserved,
        mapping={"BatchSize": batch, "ScalingConfig": {"MaximumConcurrency": 10}, "MaximumBatchingWindowInSeconds": 0},
        invoke_config=None,
    )


def test_lambda_changes_are_named_by_the_context_key_ops_set() -> None:
    before = lambda_spec()
    assert before.changes(lambda_spec()) == []
    assert before.changes(lambda_spec(batch=3, reserved=None)) == ["reservedConcurrency 10 -> None", "batchSize 5 -> 3"]
    assert before.changes(lambda_spec(env="b")) == ["environment changed"]
    # With the SNS trigger the mapping only drains the queue: its batch size is not the variant's setting.
    assert "batchSize" not in lambda_spec("lambda-sns").settings()


def test_a_poller_mode_switch_on_the_local_stack_brings_that_modes_sandbox_defaults():
    from sandbox.runs.live import _poller_mode_context
    from sandbox.stack.topology import run_context

    said: list[str] = []
    standard = run_context("lambda")
    to_provisioned = _poller_mode_context(standard, {"lambdaPollerMode": "provisioned"}, said.append)
    assert (to_provisioned["maxConcurrency"], to_provisioned["reservedConcurrency"]) == ("0", "20")
    back = _poller_mode_context(to_provisioned, {"lambdaPollerMode": "standard"}, said.append)
    assert (back["maxConcurrency"], back["reservedConcurrency"]) == ("10", "10")
    # leaving the SQS trigger drops the carried provisioned mode, which only the SQS trigger takes
    to_sns = _poller_mode_context(to_provisioned, {"lambdaTrigger": "sns"}, said.append)
    assert to_sns["lambdaPollerMode"] == "standard" and to_sns["maxConcurrency"] == "10"
    assert any("lambdaPollerMode=provisioned is dropped" in line for line in said)
