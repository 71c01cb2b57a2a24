"""`make catalog FILE=...`: load a catalog file into the running local stack (`make up`) or a deployed one.

    python -m ops.catalog load FILE [--stack-prefix FlashSale] [--shards N]
    python -m ops.catalog show [--stack-prefix FlashSale]

Finds the catalog table and the stack's ``stockShards`` (outputs of the data stack), then runs the
loader the runtime ships, ``python -m orders.catalog``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from orders import catalog as loader
from stacks import outputs

ROOT = Path(__file__).resolve().parents[1]


def _local(state_dir: Path) -> tuple[str, str]:
    state = json.loads((state_dir / "stack.json").read_text())
    os.environ.update(state["env"])
    return state["names"]["CATALOG_TABLE_NAME"], state["names"]["STOCK_SHARDS"]


def _deployed(prefix: str) -> tuple[str, str]:
    import boto3

    cfn = boto3.client("cloudformation")
    [described] = cfn.describe_stacks(StackName=f"{prefix}{outputs.DATA_STACK}")["Stacks"]
    found = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return found[outputs.CATALOG_TABLE_NAME], found[outputs.STOCK_SHARDS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.catalog", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("load", "show"))
    parser.add_argument("file", nargs="?", type=Path, help="the catalog file (load)")
    parser.add_argument("--stack-prefix", default="FlashSale", help="the deployed stacks' stackPrefix")
    parser.add_argument("--local", action="store_true", help="the stack `make up` runs (default when one is up)")
    parser.add_argument("--shards", type=int, help="stock items per SKU (default: the stack's stockShards)")
    args = parser.parse_args(argv)
    if args.command == "load" and args.file is None:
        parser.error("load needs FILE (make catalog FILE=path/to/catalog.json)")
    state_dir = Path(os.environ.get("SANDBOX_STATE_DIR", ROOT / ".sandbox"))
    try:
        if args.local or (state_dir / "stack.json").exists():
            table, shards = _local(state_dir)
        else:
            table, shards = _deployed(args.stack_prefix)
    except Exception as exc:  # no stack, no credentials: one line
        print(f"error: no stack to load a catalog into: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    forwarded = ["--table", table]
    if args.command == "load":
        forwarded = [str(args.file), *forwarded, "--shards", str(args.shards or shards)]
    return loader.main([args.command, *forwarded])


if __name__ == "__main__":
    sys.exit(main())
