"""Per-call rates of the emulator's SQS at queue depths 0 to 10,000, with and without the sandbox patch.

Each depth: fill the queue (send_message_batch), then time single sends and
receive(10)+delete_message_batch against the emulator process the sandbox uses.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_emulator(patched: bool) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "sandbox.emulator.server", "--port", str(port)] + (
        [] if patched else ["--no-sqs-patch"]
    )
    proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from sandbox.stack.deploy import wait_for

    endpoint = f"http://localhost:{port}"
    wait_for(endpoint)
    return proc, endpoint


def measure(patched: bool, depths: list[int], seconds: float) -> list[tuple[int, float, float]]:
    import boto3

    proc, endpoint = start_emulator(patched)
    try:
        sqs = boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        url = sqs.create_queue(QueueName="bench")["QueueUrl"]
        rows, depth = [], 0
        for target in depths:
            while depth < target:
                n = min(10, target - depth)
                sqs.send_message_batch(
                    QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "x" * 200} for i in range(n)]
                )
                depth += n
            sent, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                sqs.send_message(QueueUrl=url, MessageBody="y" * 200)
                sent += 1
            send_rate = sent / (time.perf_counter() - started)
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
                    "Messages", []
                )
                if msgs:
                    sqs.delete_message_batch(
                        QueueUrl=url,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)],
                    )
                done += len(msgs)
            rows.append((target, send_rate, done / (time.perf_counter() - started)))
            depth = depth + sent - done
            print(
                f"  {'patched' if patched else 'moto'} depth {target}: send {send_rate:.0f}/s, "
                f"receive+delete {rows[-1][2]:.0f} msgs/s",
                flush=True,
            )
        return rows
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depths", default="0,500,2000,5000,10000")
    parser.add_argument("--unpatched-depths", default="0,500,2000", help="moto's own code is slow: fewer depths")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    patched = measure(True, [int(d) for d in args.depths.split(",")], args.seconds)
    plain = measure(False, [int(d) for d in args.unpatched_depths.split(",")], args.seconds)
    print("\nEmulator SQS per-call rates (standard queue, single client)")
    print(f"{'depth':>7} {'send/s':>8} {'recv+del msgs/s':>16} {'moto send/s':>12} {'moto recv+del':>14}")
    base = {d: (s, r) for d, s, r in plain}
    for d, s, r in patched:
        ms, mr = (f"{v:.0f}" for v in base[d]) if d in base else ("not run", "not run")
        print(f"{d:>7} {s:>8.0f} {r:>16.0f} {ms:>12} {mr:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
