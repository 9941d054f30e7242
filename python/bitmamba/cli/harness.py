"""`bitmamba harness`: lm-evaluation-harness's own command line with the `bitmamba` model type registered.

Every argument goes to the harness unparsed (its `run` subcommand, with `--model bitmamba` added), so
any of its options works as documented there: `--tasks`, `--model_args path=...`, `--include_path`,
`--gen_kwargs`, `--limit`, `--seed`, `--output_path`, `--log_samples`, ...; `bitmamba harness ls tasks`
lists its tasks. Needs `pip install lm_eval` (the `harness` extra).
"""
from __future__ import annotations

# bitmamba.cli.main hands the arguments after `harness` straight to run_passthrough: they are lm_eval's
# options, which our parser neither knows nor should check.
PASSTHROUGH = True

HELP = "lm-evaluation-harness with the bitmamba model type (any harness task, generative ones too)"


def register(sub) -> None:
    # Listed in `bitmamba --help`; never used for parsing (see PASSTHROUGH).
    sub.add_parser("harness", help=HELP, add_help=False)


def run_passthrough(argv) -> int:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise ValueError("bitmamba harness needs lm-evaluation-harness: pip install lm_eval "
                         "(or bitmamba[harness])") from None
    from ..eval.harness import main

    return main(argv)
