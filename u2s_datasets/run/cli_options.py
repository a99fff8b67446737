"""Command-line options for sharded runs, for any subcommand that writes a safe dataset."""

import argparse
import os

from .layout import RunLayout
from .sharded import ENGINES, run_sharded


def add_run_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    group = parser.add_argument_group("sharded run (resumable; docs/scale.md)")
    group.add_argument("--engine", choices=ENGINES, default="local", help="local: this machine's processes; ray: Ray Data actors")
    group.add_argument("--ray-address", help="join a running Ray cluster (e.g. auto, HOST:6379, ray://HOST:10001); default: a local one")
    group.add_argument("--shard-size", type=int, default=1000, help="rows per parquet shard (default: 1000)")
    group.add_argument("--workers", type=int, help="processes or Ray actors (default: one per GPU; else 1 local, every CPU on Ray)")
    group.add_argument("--limit", type=int, help="only the first N rows (a trial; a later full run keeps its whole shards)")
    again = group.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run already in OUTPUT (an error if there is none)")
    again.add_argument("--overwrite", action="store_true", help="replace an output that already holds data (a sharded run: delete its shards and start again)")
    return parser


def run_from_args(args, ds, transform, output_dir: str):
    """``run_sharded`` with the options of :func:`add_run_arguments`; without ``--resume`` or
    ``--overwrite`` a new folder starts a run and a folder of the same run resumes it."""
    if args.resume and not os.path.exists(RunLayout(output_dir).manifest_path):
        raise FileNotFoundError(f"--resume: no sharded run in {output_dir!r} to continue")
    if args.ray_address and args.engine != "ray":
        raise ValueError("--ray-address needs --engine ray")
    return run_sharded(
        ds,
        transform,
        output_dir,
        shard_size=args.shard_size,
        engine=args.engine,
        num_workers=args.workers,
        ray_address=args.ray_address,
        limit=args.limit,
        overwrite=args.overwrite,
        batch_size=getattr(args, "batch_size", None) or 8,
    )
