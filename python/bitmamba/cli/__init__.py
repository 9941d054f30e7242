"""The `bitmamba` command line: one argparse parser, one module per subcommand.

Each module in this package named in COMMANDS defines `register(subparsers)`, which adds its parser and
sets `func=run` on it. Heavy imports (torch, the model) happen inside `run`, so `bitmamba --help`
stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .._version import __version__

# Order here is the order in `bitmamba --help`.
COMMANDS = ["info", "generate", "chat", "serve", "bench", "convert", "eval", "prepare-data", "train"]


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, like every other error of this command line (argparse
    prints the whole usage first, which buries the message). Subcommand parsers inherit the class."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="bitmamba",
        description="BitMamba-2 (ternary Mamba-2) language models on CPUs: generate, convert, "
        "evaluate, train.",
    )
    parser.add_argument("--version", action="version", version=f"bitmamba {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as e:
        # Bad input (missing file, corrupt model, bad option value): one clear line, no traceback.
        print(f"bitmamba {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
