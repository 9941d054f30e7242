"""Options and helpers shared by the generate / chat / bench subcommands."""
from __future__ import annotations

from ..model import DEFAULTS


def resolve_model_path(arg):
    """The model file a command should use: `arg`, or the bundled default model when none is given."""
    if arg:
        return arg
    from ..defaults import default_model_path

    return default_model_path()


def add_model_options(p) -> None:
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer.json (or its directory) overriding the model's own / the bundled GPT-2 one")
    p.add_argument("--threads", type=int, default=None, help="C++ thread count (default: physical cores)")


def add_sampling_options(p) -> None:
    g = p.add_argument_group("sampling")
    g.add_argument("--max-new-tokens", "-n", type=int, default=DEFAULTS["max_new_tokens"])
    g.add_argument("--temperature", "-t", type=float, default=DEFAULTS["temperature"],
                   help="0 = greedy (default %(default)s)")
    g.add_argument("--top-k", type=int, default=DEFAULTS["top_k"], help="0 = off (default %(default)s)")
    g.add_argument("--top-p", type=float, default=DEFAULTS["top_p"], help="1 = off (default %(default)s)")
    g.add_argument("--min-p", type=float, default=DEFAULTS["min_p"], help="0 = off (default %(default)s)")
    g.add_argument("--repeat-penalty", type=float, default=DEFAULTS["repeat_penalty"],
                   help="1 = off (default %(default)s)")
    g.add_argument("--repeat-window", type=int, default=DEFAULTS["repeat_window"],
                   help="tokens the penalty looks back over (default %(default)s)")
    g.add_argument("--seed", type=int, default=None, help="random seed (same seed = same text)")
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


def sampling_kwargs(args) -> dict:
    return dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                top_p=args.top_p, min_p=args.min_p, repeat_penalty=args.repeat_penalty,
                repeat_window=args.repeat_window, seed=args.seed, stop=args.stop or None)


def load_model(args):
    from ..model import load

    return load(resolve_model_path(args.model), tokenizer=args.tokenizer, threads=args.threads)
