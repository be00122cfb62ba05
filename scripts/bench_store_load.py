"""Bulk-load throughput of the feature/vector store (vectors/s), memory and Redis.

    .venv/bin/python scripts/bench_store_load.py [N] [DIM] [--redis redis://127.0.0.1:6379/0]

Loads N random float32 vectors of DIM into a fresh version (pipelined HSETs on Redis), switches
to it, checks a sample, deletes the namespace, and prints one JSON line per backend.
"""

from __future__ import annotations

import argparse
import json

from tastemaker.bench.serving import run_bulk_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1_000_000)
    parser.add_argument("dim", nargs="?", type=int, default=32)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--batch-size", type=int, default=10_000)
    args = parser.parse_args()
    for store in ("memory", "redis"):
        out = run_bulk_load(args.n, args.dim, store=store, batch_size=args.batch_size, redis_url=args.redis)
        print(json.dumps(out))


if __name__ == "__main__":
    main()
