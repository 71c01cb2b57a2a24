"""The metrics the alarms watch are the metrics the workers print (EMF), names and dimensions alike."""

import json
import time

from constructs_lib import order_runtime as infra
from orders.adapters.memory import InMemoryQueue
from orders.entrypoints import observability, worker_lambda
from orders.entrypoints.worker_ecs import QueueWorker
from tests.helpers import http_event, sqs_event


def emitted(out: str) -> list[tuple[str, str, dict, dict]]:
    """(namespace, metric, dimensions, values) for every EMF blob printed."""
    found = []
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            dims = {d: blob[d] for group in directive["Dimensions"] for d in group}
            for metric in directive["Metrics"]:
                found.append((directive["Namespace"], metric["Name"], dims, blob[metric["Name"]]))
    return found


def test_runtime_and_infra_name_the_same_metrics():
    assert observability.NAMESPACE == infra.METRICS_NAMESPACE
    assert observability.RECORDS_FAILED == infra.RECORDS_FAILED
    assert observability.LAMBDA_WORKER_SERVICE == infra.LAMBDA_WORKER_SERVICE
    assert observability.ECS_WORKER_SERVICE == infra.ECS_WORKER_SERVICE


def test_lambda_worker_reports_a_partial_batch_failure_as_records_failed(aws, valid_order, lambda_context, capsys):
    from orders.entrypoints import api

    api.handler(http_event("POST", "/orders", valid_order), lambda_context)
    [good] = [m["Body"] for m in aws.queue_messages()]
    capsys.readouterr()
    result = worker_lambda.handler(sqs_event(good, "{garbage"), lambda_context)
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == ["msg-1"]
    metrics = emitted(capsys.readouterr().out)
    assert (infra.METRICS_NAMESPACE, infra.RECORDS_FAILED, {"service": infra.LAMBDA_WORKER_SERVICE}, [1.0]) in [
        (ns, name, dims, value if isinstance(value, list) else [value]) for ns, name, dims, value in metrics
    ]


def test_ecs_worker_reports_failed_records_as_emf(capsys):
    queue = InMemoryQueue()
    for body in ("poison-1", "poison-2"):
        queue.send(body)

    def handle(body: str) -> None:
        raise ValueError(f"cannot process {body}")

    counters = observability.EmfCounters(observability.ECS_WORKER_SERVICE)
    worker = QueueWorker(
        sqs=queue,
        queue_url="memory",
        handle=handle,
        concurrency=2,
        visibility_timeout_s=30,
        wait_time_s=1,
        max_backoff_s=60,
        counters=counters,
    )
    worker.start()
    deadline = time.monotonic() + 10
    while worker.stats.failed < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop(timeout_s=5)
    capsys.readouterr()
    counters.flush()
    [(ns, _, dims, value)] = [m for m in emitted(capsys.readouterr().out) if m[1] == infra.RECORDS_FAILED]
    assert (ns, dims) == (infra.METRICS_NAMESPACE, {"service": infra.ECS_WORKER_SERVICE})
    assert sum(value if isinstance(value, list) else [value]) == 2
