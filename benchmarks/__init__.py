"""Benchmarks run by `make bench`: every figure printed is measured in the run."""


def in_own_processes(module: str, modes: tuple[tuple[str, str], ...]) -> dict[str, object] | None:
    """Run ``python -m module FLAG`` once per (label, flag), each in a fresh process (a moto fix patches the
    process it runs in); each prints its figures as JSON on its last line. None if one failed (said why)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    rows: dict[str, object] = {}
    for label, flag in modes:
        proc = subprocess.run(
            [sys.executable, "-m", module, flag],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            print(proc.stderr[-2000:], file=sys.stderr)
            return None
        rows[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    return rows
