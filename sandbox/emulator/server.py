"""Runs moto server on loopback, with the fidelity fixes and the SQS indexes patched in first.

``python -m sandbox.emulator.server --port N`` (a child process of the sandbox, so
Ctrl-C or a crash of the sandbox never leaves it behind: it exits when its
parent's pipe closes).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-sqs-patch", action="store_true", help="run moto's own SQS code")
    args = parser.parse_args(argv)

    from sandbox.emulator import moto_fixes

    moto_fixes.apply()
    if not args.no_sqs_patch:
        from sandbox.emulator import sqs_patch

        sqs_patch.apply()

    from moto.server import ThreadedMotoServer

    from sandbox.emulator import request_counts

    request_counts.install()  # GET /_sandbox/requests: what this process served, by service and operation

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print(f"ready {args.port}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_parent() -> None:
        sys.stdin.read()  # returns when the parent goes away
        stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    stop.wait()
    server.stop()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
