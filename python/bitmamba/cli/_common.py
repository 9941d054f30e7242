"""Options and helpers shared by the generate / chat / bench subcommands."""
from __future__ import annotations

import os
import sys

from ..formats.bit2 import MAGIC_BYTES as BIT2_MAGIC
from ..model import check_sampling, generation_defaults, stop_strings

# Model files are recognised by their first four bytes (docs/formats.md) or, failing that, by name.
MODEL_MAGICS = (b"GGUF", BIT2_MAGIC)
MODEL_SUFFIXES = (".gguf", ".bin")


def resolve_model_path(arg):
    """The model a command should use: `arg`; for a Hugging Face repo id, the bitmamba.hub.HubModel it
    resolves to (downloaded, converted into our cache when needed; os.fspath() gives the file, and
    bitmamba.load takes it as it is); or the bundled default model when none is given."""
    if arg:
        from ..hub import parse

        ref = parse(arg)
        if ref is not None:
            from ..hub import resolve

            return resolve(ref)
        return arg
    from ..defaults import default_model_path

    return default_model_path()


def is_model_file(path: str) -> bool:
    """Whether path is an existing file that is (or is named like) a GGUF or BIT2 model."""
    if not os.path.isfile(path):
        return False
    if path.lower().endswith(MODEL_SUFFIXES):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) in MODEL_MAGICS
    except OSError:
        return False


def _not_utf8(what: str, raw: bytes, e: UnicodeDecodeError) -> ValueError:
    # An error rather than decoding with replacement: the model would silently see U+FFFD where the
    # user's text was.
    return ValueError(f"{what} is not valid UTF-8 text (byte 0x{raw[e.start]:02X} at offset {e.start}): "
                      "give UTF-8 text (convert it with iconv -t UTF-8)")


def text_arg(text: str, what: str) -> str:
    """A command-line string checked to be text. Python keeps bytes of argv that are not UTF-8 as lone
    surrogates (surrogateescape), which no tokenizer can encode: they are reported here instead."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError as e:
        bad = e.start
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the bytes as they were given
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(what, raw, e) from None
    except UnicodeEncodeError:
        pass
    raise ValueError(f"{what} is not valid text (character {bad} is the lone surrogate U+{ord(text[bad]):04X})")


def decode_input(raw: bytes, what: str) -> str:
    """Bytes read from standard input as UTF-8 text, whatever the locale (the models' tokenizers are
    UTF-8); ValueError naming the first bad byte otherwise."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _not_utf8(what, raw, e) from None


def add_model_options(p) -> None:
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer.json, a directory holding one, or a GGUF whose embedded tokenizer to use "
                   "(default: the model's own, else a tokenizer.json beside it, else the bundled GPT-2 one)")
    add_threads_option(p)


def add_threads_option(p) -> None:
    p.add_argument("--threads", type=int, default=None,
                   help="C++ thread count, 1 to 1024 (default: physical cores; more than that warns)")


PACKING_CHOICES = ("auto", "decode", "lut", "base3")


def add_packing_option(p) -> None:
    p.add_argument("--packing", choices=PACKING_CHOICES, default=None,
                   help="weight packing to build the model in (default: BITMAMBA_PACKING, else auto = the "
                   "load-time autotune, which keeps the packing whose one-token product is fastest)")


def apply_packing(args) -> None:
    """Set the process-wide packing policy from --packing (before the model is loaded)."""
    if args.packing is not None:
        from ..ops.ternary import set_layout_policy

        set_layout_policy(args.packing)


def check_threads(args) -> None:
    """Refuse a --threads the thread pool cannot take, and warn (stderr) when it exceeds the cores
    this process may use: it still runs, but the extra threads only wait for a core."""
    n = args.threads
    if n is None:
        return
    if not 1 <= n <= 1024:
        raise ValueError(f"--threads must be in [1, 1024], got {n}")
    from ..system import cpu_info

    cores = cpu_info()["default_threads"]
    if n > cores:
        print(f"bitmamba {args.command}: warning: --threads {n} is more than the {cores} CPU cores this "
              f"process can use; running anyway (expect it to be slower than --threads {cores})",
              file=sys.stderr)


def add_sampling_options(p) -> None:
    g = p.add_argument_group("sampling")
    DEFAULTS = generation_defaults()
    g.add_argument("--max-new-tokens", "-n", type=int, default=DEFAULTS["max_new_tokens"])
    g.add_argument("--temperature", "-t", type=float, default=DEFAULTS["temperature"],
                   help="<= 0 = greedy (default %(default)s)")
    g.add_argument("--top-k", type=int, default=DEFAULTS["top_k"], help="0 = off (default %(default)s)")
    g.add_argument("--top-p", type=float, default=DEFAULTS["top_p"], help="in (0, 1]; 1 = off (default %(default)s)")
    g.add_argument("--min-p", type=float, default=DEFAULTS["min_p"], help="in [0, 1]; 0 = off (default %(default)s)")
    g.add_argument("--repeat-penalty", type=float, default=DEFAULTS["repeat_penalty"],
                   help="> 0; 1 = off (default %(default)s)")
    g.add_argument("--repeat-window", type=int, default=DEFAULTS["repeat_window"],
                   help="tokens the penalty looks back over (default %(default)s)")
    g.add_argument("--seed", type=int, default=None,
                   help="random seed, 0 to 2**64-1 (same seed = same text; default: a random one)")
    g.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


def sampling_kwargs(args) -> dict:
    """The sampling options for Model.stream, checked (ValueError naming the flag) so that a command
    can fail before it loads a model or prints anything."""
    kw = check_sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                        top_p=args.top_p, min_p=args.min_p, repeat_penalty=args.repeat_penalty,
                        repeat_window=args.repeat_window, seed=args.seed, flags=True)
    kw["stop"] = stop_strings([text_arg(s, "--stop") for s in args.stop]) or None
    return kw


def load_model(args):
    from ..model import load

    return load(resolve_model_path(args.model), tokenizer=args.tokenizer, threads=args.threads)
