"""``make watch``: the running stack in the terminal, refreshed each second (rich)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


def render(status: dict[str, Any] | None, state: dict[str, Any] | None) -> Group | Text:
    """One frame from ``status.json`` and ``stack.json``; a stack that is not up is one line."""
    if status is None or state is None:
        return Text("no local stack is up: `make up` starts one", style="yellow")
    age = time.time() - float(status["at"])
    pipeline = Table.grid(padding=(0, 3))
    for _ in range(8):
        pipeline.add_column(justify="right")
    pipeline.add_row(
        *(
            Text(h, style="bold")
            for h in ("backlog", "waiting", "in flight", "DLQ", "workers", "paid/s", "charges", "double")
        )
    )
    pipeline.add_row(
        str(status["visible"] + status["in_flight"]),
        str(status["visible"]),
        str(status["in_flight"]),
        Text(str(status["dlq"]), style="red" if status["dlq"] else ""),
        str(status["workers"]),
        f"{status['paid_per_s']:.1f}",
        str(status["charges"]),
        Text(str(status["double_charges"]), style="red bold" if status["double_charges"] else "green"),
    )
    params = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
    params.add_column("active setting")
    params.add_column("value", justify="right")
    for key, value in status["params"].items():
        params.add_row(key, str(value))
    changes = Table(show_header=False, box=None, padding=(0, 1))
    changes.add_column(style="dim")
    changes.add_column()
    for c in status.get("changes", [])[-6:]:
        changes.add_row(datetime.fromtimestamp(c["at"]).strftime("%H:%M:%S"), c["message"])
    for a in status.get("activities", [])[-4:]:
        changes.add_row("scaling", f"{a['from']} -> {a['to']} tasks: {a['why']}")
    title = (
        f"{status['compute']}  ·  API {state['api_url']}  ·  time x{status['time_scale']:g}"
        f"  ·  accepted {status['accepted']}" + (f"  ·  status {age:.0f} s old" if age > 3 else "")
    )
    return Group(
        Panel(pipeline, title=title, title_align="left"),
        Panel(params, title="scaling (from the deployed stack)", title_align="left"),
        Panel(changes if changes.row_count else Text("none yet"), title="control plane", title_align="left"),
    )


def watch(once: bool = False, interval_s: float = 1.0) -> int:
    from rich.console import Console
    from rich.live import Live

    from sandbox.runs.live import read_state, read_status

    console = Console()
    if once:
        console.print(render(read_status(), read_state()))
        return 0
    with Live(render(read_status(), read_state()), console=console, refresh_per_second=4, screen=False) as live:
        try:
            while True:
                time.sleep(interval_s)
                live.update(render(read_status(), read_state()))
        except KeyboardInterrupt:
            return 0
