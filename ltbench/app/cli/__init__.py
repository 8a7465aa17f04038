"""ltbench command line. This module only dispatches: each subcommand is a module of this package
with ``register(subparsers)`` (its options) and the handler it sets."""
import argparse
import os
import sys

from ltbench import __version__
from ltbench.app.cli import cache, compare, data, listing, plot, report, run, sweep, table
from ltbench.core.errors import UserError

SUBCOMMANDS = (run, sweep, table, compare, plot, report, listing, data, cache)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltbench", description="Long-tailed recognition benchmarks for CLIP-style models.")
    parser.add_argument("--version", action="version", version=f"ltbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for subcommand in SUBCOMMANDS:
        subcommand.register(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        print(f"ltbench: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("ltbench: interrupted; rerun the same command with --resume to continue from the last "
              "epoch checkpoint", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ltbench table | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
