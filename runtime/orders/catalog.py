"""Load or show the catalog: ``python -m orders.catalog load FILE [--table T] [--shards N]`` or ``show``.

The file format is in docs/catalog.md. Every row is checked before anything is written: a file with bad
rows prints one line per problem, exits 1 and loads nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from orders.adapters import aws
from orders.adapters.catalog import load, stock_levels
from orders.cli import OneLineParser
from orders.domain.catalog import MAX_SHARDS, CatalogFileError, parse_catalog


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m orders.catalog", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    loading = sub.add_parser("load", help="load or update the catalog from a JSON file")
    loading.add_argument("file", type=Path)
    loading.add_argument(
        "--shards",
        type=int,
        default=int(os.environ.get("STOCK_SHARDS") or 1),
        help=f"stock items per SKU, 1-{MAX_SHARDS} (default: STOCK_SHARDS, the stack's stockShards)",
    )
    show = sub.add_parser("show", help="every product with its stock counters")
    for p in (loading, show):
        p.add_argument("--table", default=os.environ.get("CATALOG_TABLE_NAME", ""), help="default: CATALOG_TABLE_NAME")
    args = parser.parse_args(argv)
    if not args.table:
        parser.error("--table: no catalog table given (or set CATALOG_TABLE_NAME)")
    client = aws.client("dynamodb")
    if args.command == "show":
        for s in stock_levels(client, args.table):
            p = s["product"]
            print(
                f"{p.sku:<24} {p.price:>10} {p.currency}  left {s['left']:>7}  initial {s['initial']:>7}"
                f"  sold {s['sold']:>7}  released {s['released']:>6}  shards {s['shards']}  {p.name}"
            )
        return 0
    try:
        rows = parse_catalog(args.file.read_bytes(), shards=args.shards)
    except OSError as exc:
        print(f"error: {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    except CatalogFileError as exc:
        for problem in exc.problems:
            print(f"error: {args.file}: {problem}", file=sys.stderr)
        print(f"error: {args.file}: nothing loaded", file=sys.stderr)
        return 1
    written = load(client, args.table, rows)
    stock = sum(r.stock for r in rows)
    print(f"catalog: {len(rows)} products, {stock} in stock over {args.shards} shard(s) each ({written} items written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
