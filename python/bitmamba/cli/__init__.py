"""The `bitmamba` command line: one argparse parser, one module per subcommand.

Each module in this package named in COMMANDS defines `register(subparsers)`, which adds its parser and
sets `func=run` on it; a module with PASSTHROUGH = True instead takes its arguments unparsed, in
`run_passthrough(argv)` (`harness`, whose options are lm-evaluation-harness's). Heavy imports (torch, the model) happen inside `run`, so `bitmamba --help`
stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .._version import __version__

# Order here is the order in `bitmamba --help`.
COMMANDS = ["info", "generate", "chat", "serve", "bench", "convert", "eval", "harness", "prepare-data", "train"]


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


def _passthrough(name: str):
    """The module of a PASSTHROUGH command, or None."""
    if name not in COMMANDS:
        return None
    module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
    return module if getattr(module, "PASSTHROUGH", False) else None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    module = _passthrough(argv[0]) if argv else None
    if module is not None:
        command, call = argv[0], (lambda: module.run_passthrough(argv[1:]))
    else:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        command, call = args.command, (lambda: args.func(args))
    try:
        return int(call() or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as e:
        # Bad input (missing file, corrupt model, bad option value): one clear line, no traceback.
        print(f"bitmamba {command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
