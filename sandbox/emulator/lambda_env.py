"""One Lambda execution environment: a fresh interpreter that imports the handler once.

Protocol (JSON lines): the child prints {"init_ms": ...} after importing the
handler module (a real cold start), then for each event line on stdin prints
{"ok": true, "result": ...} or {"ok": false, "error": ...}.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid


class Context:
    def __init__(self, name: str, timeout_ms: int, memory_mb: int) -> None:
        self.function_name = name
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.aws_request_id = str(uuid.uuid4())
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> int:
    handler_path, name, timeout_ms, memory_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    # The protocol gets a file descriptor of its own; fd 1 is pointed at the log before the handler is
    # imported, so nothing the function writes to stdout (a logger holding sys.stdout, EMF metrics, print)
    # can be read as a response, or shift every later response by a line.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    started = time.perf_counter()
    module_name, func_name = handler_path.rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), func_name)
    out.write(json.dumps({"init_ms": (time.perf_counter() - started) * 1000}) + "\n")
    out.flush()
    for line in sys.stdin:
        event = json.loads(line)
        try:
            result = handler(event, Context(name, timeout_ms, memory_mb))
            out.write(json.dumps({"ok": True, "result": result}, default=str) + "\n")
        except Exception as exc:
            traceback.print_exc()
            out.write(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
