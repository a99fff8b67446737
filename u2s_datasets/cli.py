"""The ``u2s`` command line. Each subcommand lives in ``u2s_datasets/commands/<name>.py``."""

import argparse
import importlib
import logging
import sys

COMMANDS = ("anonymize", "demo", "evaluate", "finetune", "pairs", "publish", "reproduce", "review", "apply_review", "convert_internvl",
            "tune")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="u2s", description="Privacy-safe variants of image datasets (Unsafe2Safe).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"u2s_datasets.commands.{name}").register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args) or 0
    except (FileNotFoundError, KeyError, ValueError, TypeError) as e:
        print(f"u2s {args.command}: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
