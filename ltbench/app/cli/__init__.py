"""ltbench command line. This module only dispatches: each subcommand is a module of this package
with ``register(subparsers)`` (its options) and the handler it sets."""
import argparse
import os
import sys

from ltbench import __version__
from ltbench.app.cli import cache, compare, data, listing, plot, report, run, sweep, table, tune, weights
from ltbench.core.errors import UserError

SUBCOMMANDS = (run, sweep, tune, table, compare, plot, report, listing, data, cache, weights)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ltbench", description="Long-tailed recognition benchmarks for CLIP-style models.")
    parser.add_argument("--version", action="version", version=f"ltbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for subcommand in SUBCOMMANDS:
        subcommand.register(commands)
    return parser


def _parse(parser: argparse.ArgumentParser, argv):
    """parse_args, except that a subcommand that sets ``intermixed=<dest>`` (a nargs='*' positional)
    also takes the positionals given after its options (`plot per-class --dataset D ROW`), which
    argparse alone rejects; anything else left over is the usual one-line error."""
    args, extra = parser.parse_known_args(argv)
    dest = getattr(args, "intermixed", None)
    if extra and dest and not any(item.startswith("-") for item in extra):
        setattr(args, dest, list(getattr(args, dest)) + extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv=None) -> int:
    args = _parse(build_parser(), argv)
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
