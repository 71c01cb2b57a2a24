"""ECS worker efficiency: measured orders/s against the processor's limit, min(c, S) / L per process.

(a) in memory: the real QueueWorker, record handler, domain service and
    Powertools idempotency, with in-memory adapters behind the same ports, so
    the worker (not an emulator) is what is measured;
(b) end to end: the real ``python -m orders.entrypoints.worker_ecs`` process
    against moto server on loopback, at a payment latency long enough that the
    emulator is not what is measured (``--e2e-latency-ms``). Each order makes five
    calls between two payments of the same consumer, and the consumers' calls
    arrive together (they finish payments together), so at concurrency = slots a
    consumer loses a little time per payment to the emulator: the bench prints
    the ratio, and with more consumers than slots that time is hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sandbox.runs.in_memory import in_memory

ROOT = Path(__file__).resolve().parents[1]


def end_to_end(orders: int, concurrency: int, slots: int, latency_ms: int) -> dict[str, Any]:
    """The real worker process against moto server on loopback."""

    import boto3

    from sandbox.emulator.local_aws import create_order_resources, moto_server

    with moto_server() as endpoint:
        creds = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
        sqs, ddb, sns = (
            boto3.client(s, endpoint_url=endpoint, region_name="us-east-1", **creds) for s in ("sqs", "dynamodb", "sns")
        )
        res = create_order_resources(sqs, sns, ddb, visibility_timeout_s=60)
        url = res.queue_url
        env = {
            **os.environ,
            **res.environment(),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "PYTHONPATH": str(ROOT / "runtime"),
            "PAYMENT_SLOTS": str(slots),
            "PAYMENT_LATENCY_MS": str(latency_ms),
            "WORKER_CONCURRENCY": str(concurrency),
            "SQS_WAIT_TIME_S": "1",
            "QUEUE_VISIBILITY_TIMEOUT_S": "60",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "LOG_LEVEL": "WARNING",
        }
        # Orders are accepted through the real service, so the queue holds real events.
        os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS_", "ORDER", "IDEMPOTENCY", "CATALOG"))})
        from orders import bootstrap
        from orders.domain.models import parse_order_request

        bootstrap.reset()
        service = bootstrap.container().service
        request = service.price(parse_order_request({"customer_id": "bench", "items": [{"sku": "SKU-1", "qty": 1}]}))
        ids = [service.accept(request).order_id for _ in range(orders)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "orders.entrypoints.worker_ecs"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started = time.perf_counter()
        first_seen, rss_kb = _watch_drain(sqs, url, orders, proc.pid, started)
        elapsed = time.perf_counter() - started
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        statuses = [ddb.get_item(TableName="orders", Key={"order_id": {"S": i}})["Item"]["status"]["S"] for i in ids]
        assert statuses.count("PAID") == orders, statuses
        limit = min(concurrency, slots) / (latency_ms / 1000)
        # Sustained rate: from the first message taken to the queue drained (start-up reported apart).
        sustained = orders / (started + elapsed - (first_seen or started))
        return {
            "processes": 1,
            "concurrency": concurrency,
            "orders": orders,
            "rate": sustained,
            "limit": limit,
            "ratio": sustained / limit,
            "rss_mb": rss_kb / 1024,
            "startup_s": (first_seen or started) - started,
            "exit_code": proc.returncode,
        }


def _watch_drain(sqs: Any, url: str, orders: int, pid: int, started: float) -> tuple[float | None, int]:
    """Poll the queue until it is empty: (when the worker took its first batch, the worker's peak RSS in kB)."""
    rss_kb = 0
    first_seen = None
    while True:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        visible = int(attrs["ApproximateNumberOfMessages"])
        left = visible + int(attrs["ApproximateNumberOfMessagesNotVisible"])
        if first_seen is None and visible < orders:  # the worker took its first batch
            first_seen = time.perf_counter()
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rss_kb = max(rss_kb, int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1]))
        except (OSError, StopIteration):
            pass
        if left == 0:
            return first_seen, rss_kb
        if time.perf_counter() - started > 600:
            raise TimeoutError("end-to-end bench did not drain in 600 s")
        time.sleep(0.1)


def table(title: str, rows: list[dict[str, Any]], bar: float | None) -> str:
    lines = [
        f"\n{title}",
        f"{'procs':>5} {'conc':>5} {'orders':>7} {'measured/s':>11} {'limit/s':>8} {'ratio':>6} {'RSS MB':>7}  verdict",
    ]
    for r in rows:
        verdict = (
            "" if bar is None or r["concurrency"] < r.get("slots", 0) else ("ok" if r["ratio"] >= bar else "BELOW BAR")
        )
        lines.append(
            f"{r['processes']:>5} {r['concurrency']:>5} {r['orders']:>7} {r['rate']:>11.2f} {r['limit']:>8.2f} "
            f"{r['ratio']:>6.3f} {r['rss_mb']:>7.1f}  {verdict}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=2000, help="orders per process for concurrency >= slots")
    parser.add_argument("--slots", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--e2e-latency-ms", type=int, default=6000)
    parser.add_argument("--e2e-orders", type=int, default=60)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    s, lat = args.slots, args.latency_ms
    rows = []
    for conc in (1, 5, 20, 100):
        n = args.orders if conc >= s else max(100, args.orders // (s * 4))
        row = in_memory(1, n, conc, s, lat)
        row["slots"] = s
        rows.append(row)
        print(f"  in-memory c={conc}: {row['rate']:.2f}/s of {row['limit']:.2f}/s", flush=True)
    four = in_memory(4, args.orders, 20, s, lat)
    four["slots"] = s
    rows.append(four)
    failures = [r for r in rows[1:4] if r["ratio"] < 0.97] + ([four] if four["ratio"] < 0.95 else [])
    print(
        table(f"(a) in-memory adapters, S={s}, L={lat} ms (bars: 1 process >= 0.97, 4 processes >= 0.95)", rows, None)
    )
    e2e: list[dict[str, Any]] = []
    if not args.skip_e2e:
        for conc in (5, 20, 100):
            row = end_to_end(args.e2e_orders, conc, s, args.e2e_latency_ms)
            e2e.append(row)
            print(
                f"  moto c={conc}: {row['rate']:.2f}/s of {row['limit']:.2f}/s (start-up {row['startup_s']:.1f} s)",
                flush=True,
            )
        print(
            table(
                f"(b) real worker process against moto server, S={s}, L={args.e2e_latency_ms} ms "
                "(sustained: first message taken to queue drained)",
                e2e,
                None,
            )
        )
        failures += [r for r in e2e if r["ratio"] < 0.97]
        rss = max(r["rss_mb"] for r in e2e if r["concurrency"] == 100)
        print(f"\nECS worker peak RSS at concurrency 100 (moto run): {rss:.1f} MB (bar: < 150 MB)")
        if rss >= 150:
            failures.append({"rss": rss})
    if args.json:
        args.json.write_text(json.dumps({"in_memory": rows, "end_to_end": e2e}, indent=2))
    print("\nresult:", "all bars met" if not failures else f"{len(failures)} bar(s) missed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
