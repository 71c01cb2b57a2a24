"""``make smoke``: one order end to end against a deployed stack, or the local one ``make up`` runs.

Places an order (signed with SigV4 when the API uses IAM auth), follows it to a terminal state over HTTP and
over the tracking WebSocket, then looks at the dead-letter queues and the alarms. Prints a one-screen verdict;
exit 1 if any step failed, 2 if the stack cannot be found.

    python -m ops.smoke [--local | --stack-prefix FlashSale] [--timeout 120]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from stacks import outputs

ROOT = Path(__file__).resolve().parents[1]
TERMINAL = ("PAID", "PAYMENT_FAILED", "REJECTED")


@dataclass
class Target:
    """Where the stack is: its API, tracking URL, dead-letter queues and alarm prefix."""

    api_url: str
    tracking_url: str | None
    dlq_urls: list[str]
    iam_auth: bool
    alarm_prefix: str | None
    session: Any
    token: str | None = None  # apiAuth=jwt: a customer's bearer token


def local_target(state_dir: Path) -> Target:
    """The stack ``make up`` keeps running (its ``stack.json``); the local front takes unsigned requests."""
    state = json.loads((state_dir / "stack.json").read_text())
    os.environ.update(state["env"])
    names = state["names"]
    token = None
    if state.get("jwt_key"):  # the sandbox's issuer signs a token for a smoke-test customer
        from sandbox.emulator.tokens import mint

        token = mint(Path(state["jwt_key"]), f"smoke-{uuid.uuid4().hex[:8]}")
    return Target(
        api_url=state["api_url"],
        tracking_url=names.get("TRACKING_URL"),
        dlq_urls=[names["ORDERS_DLQ_URL"]],
        iam_auth=False,
        alarm_prefix=None,  # the local emulator keeps no alarms
        session=boto3.session.Session(),
        token=token,
    )


def deployed_target(prefix: str) -> Target:
    """A stack deployed with ``make deploy``: everything from its named outputs."""
    session = boto3.session.Session()
    cfn = session.client("cloudformation")

    def stack_outputs(stack: str) -> dict[str, str]:
        [described] = cfn.describe_stacks(StackName=stack)["Stacks"]
        return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}

    service, data = stack_outputs(f"{prefix}-service"), stack_outputs(f"{prefix}-data")
    template = json.loads(cfn.get_template(StackName=f"{prefix}-service", TemplateStage="Processed")["TemplateBody"])
    routes = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Route"]
    return Target(
        api_url=service[outputs.API_URL].rstrip("/"),
        tracking_url=service.get(outputs.TRACKING_URL),
        dlq_urls=[data[outputs.ORDERS_DLQ_URL]],
        iam_auth=any(r.get("AuthorizationType") == "AWS_IAM" for r in routes),
        alarm_prefix=f"{prefix}-service",
        session=session,
        token=os.environ.get("SMOKE_TOKEN") or None,  # apiAuth=jwt: a signed-in test customer's token
    )


def _signed(session: Any, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(session.get_credentials(), "execute-api", session.region_name).add_auth(request)
    return dict(request.headers.items())


def http(target: Target, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    url = f"{target.api_url}{path}"
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    if target.iam_auth:
        headers = _signed(target.session, method, url, data, headers)
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def track(target: Target, order_id: str, timeout_s: float) -> tuple[bool, str]:
    """Follow the order over the tracking WebSocket until a terminal status arrives (catch-up or live)."""
    import websocket  # websocket-client

    assert target.tracking_url is not None
    headers: list[str] = []
    url = target.tracking_url
    if target.iam_auth:
        https = target.tracking_url.replace("wss://", "https://", 1)
        signed = _signed(target.session, "GET", https, None, {})
        headers = [f"{k}: {v}" for k, v in signed.items() if k.lower() != "host"]
    elif target.token:  # apiAuth=jwt: $connect takes a single-use ticket issued to the signed-in caller
        code, issued = http(target, "POST", "/tracking/tickets")
        if code != 201:
            return False, f"POST /tracking/tickets -> {code} {issued}"
        url = f"{target.tracking_url}?ticket={issued['ticket']}"
    ws = websocket.create_connection(url, header=headers, timeout=5)
    try:
        ws.send(json.dumps({"action": "track", "order_id": order_id, "after": 0}))
        deadline = time.monotonic() + timeout_s
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                frame = json.loads(ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if frame.get("type") == "event":
                seen.append(str(frame["status"]))
                if frame["status"] in TERMINAL:
                    return True, " -> ".join(seen)
            elif frame.get("type") == "error":
                return False, f"error frame: {frame.get('error')}"
        return False, f"no terminal push within {timeout_s:.0f} s (saw {' -> '.join(seen) or 'nothing'})"
    finally:
        ws.close()


def dead_letters(target: Target) -> dict[str, int]:
    sqs = target.session.client("sqs")
    out = {}
    for url in target.dlq_urls:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        out[url.rsplit("/", 1)[-1]] = int(attrs["ApproximateNumberOfMessages"])
    return out


def alarms_in_alarm(target: Target) -> list[str] | None:
    if target.alarm_prefix is None:
        return None
    cw = target.session.client("cloudwatch")
    found = cw.describe_alarms(AlarmNamePrefix=target.alarm_prefix, StateValue="ALARM")["MetricAlarms"]
    return [a["AlarmName"] for a in found]


def smoke(target: Target, timeout_s: float) -> list[tuple[bool, str, str]]:
    """(passed, step, detail) for each step."""
    steps: list[tuple[bool, str, str]] = []
    before = dead_letters(target)
    code, page = http(target, "GET", "/catalog")
    in_stock = sorted((p for p in page.get("products", []) if int(p["left"]) > 0), key=lambda p: -int(p["left"]))
    steps.append(
        (code == 200 and bool(in_stock), "catalog", f"GET /catalog -> {code}, {len(in_stock)} products in stock")
    )
    if not in_stock:
        steps[-1] = (False, "catalog", f"GET /catalog -> {code} {page}: load one (make catalog FILE=...)")
        return steps
    product = in_stock[0]  # the most plentiful: a smoke test must not take the scarce unit a shopper wants
    smoke_order: dict[str, Any] = {} if target.token else {"customer_id": f"smoke-{uuid.uuid4().hex[:8]}"}
    smoke_order |= {
        "items": [{"sku": product["sku"], "qty": 1, "price": product["price"]}],
        "payment_token": "tok_visa",
    }
    status, body = http(target, "POST", "/orders", smoke_order)
    order_id = body.get("order_id")
    steps.append((status == 202 and bool(order_id), "accept", f"POST /orders -> {status} {order_id or body}"))
    if not order_id:
        return steps
    deadline, state = time.monotonic() + timeout_s, "?"
    while time.monotonic() < deadline:
        code, order = http(target, "GET", f"/orders/{order_id}")
        state = str(order.get("status", code))
        if state in TERMINAL:
            break
        time.sleep(1)
    steps.append((state == "PAID", "pay (HTTP)", f"GET /orders/{order_id} -> {state}"))
    if target.tracking_url:
        ok, detail = track(target, order_id, timeout_s=min(30.0, timeout_s))
        steps.append((ok, "track (WebSocket)", detail))
    else:
        steps.append((False, "track (WebSocket)", "the stack names no tracking URL"))
    after = dead_letters(target)
    grew = {q: after[q] - before.get(q, 0) for q in after if after[q] > before.get(q, 0)}
    steps.append((not grew, "dead-letter queues", f"{after} (grew: {grew or 'none'})"))
    alarming = alarms_in_alarm(target)
    if alarming is None:
        steps.append((True, "alarms", "not modelled by the local emulator"))
    else:
        steps.append((not alarming, "alarms", ", ".join(alarming) or "none in ALARM"))
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="the stack `make up` runs (default when one is up)")
    parser.add_argument("--stack-prefix", default="FlashSale", help="the deployed stacks' stackPrefix")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the order to end")
    args = parser.parse_args(argv)
    state_dir = Path(os.environ.get("SANDBOX_STATE_DIR", ROOT / ".sandbox"))
    try:
        if args.local or (state_dir / "stack.json").exists():
            target, where = local_target(state_dir), f"local stack ({state_dir / 'stack.json'})"
        else:
            target, where = deployed_target(args.stack_prefix), f"{args.stack_prefix}-service"
    except Exception as exc:  # no stack, no credentials: one line
        print(f"error: no stack to smoke-test: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"smoke: {where}, API {target.api_url}{' (IAM)' if target.iam_auth else ''}")
    steps = smoke(target, args.timeout)
    for ok, step, detail in steps:
        print(f"{'ok  ' if ok else 'FAIL'} {step:<20} {detail}")
    failed = [s for s in steps if not s[0]]
    print(f"smoke: {'FAILED' if failed else 'PASSED'} ({len(steps) - len(failed)}/{len(steps)} steps)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
