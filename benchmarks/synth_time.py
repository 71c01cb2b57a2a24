"""Synth time per variant with the real CDK CLI (bar: under 20 s each on this machine)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "lambda-sqs": ["-c", "compute=lambda", "-c", "lambdaTrigger=sqs"],
    "lambda-sns": ["-c", "compute=lambda", "-c", "lambdaTrigger=sns"],
    "ecs": ["-c", "compute=ecs"],
    "lambda-mi": ["-c", "compute=lambda-mi"],
}


def main() -> int:
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK_DISABLE_CLI_TELEMETRY": "true"}
    print(f"\n{'variant':<12} {'synth s':>8}  verdict")
    slow = 0
    for name, args in VARIANTS.items():
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            proc = subprocess.run(
                ["npx", "--no-install", "cdk", "synth", "--quiet", "--output", out, *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        slow += elapsed >= 20
        print(f"{name:<12} {elapsed:>8.1f}  {'ok' if elapsed < 20 else 'SLOW'}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
