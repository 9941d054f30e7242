"""`bitmamba generate MODEL "prompt"`: stream a continuation to the terminal."""
from __future__ import annotations

import os
import shlex
import sys

from ._common import (MODEL_SUFFIXES, add_model_options, add_sampling_options, check_threads, decode_input,
                      is_model_file, load_model, sampling_kwargs, text_arg)


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate text from a prompt (streams to the terminal)",
                       description="Continue PROMPT with a GGUF or BIT2 model, printing text as it is "
                       "generated. Without MODEL the bundled default model is used: "
                       "bitmamba generate \"Once upon a time\".")
    p.add_argument("args", metavar="[MODEL] PROMPT", nargs="+",
                   help="model file (.gguf or BIT2 .bin) or Hugging Face repo id (owner/name[@revision], "
                   "hf://...; default: the bundled model) and the text to continue ('-' reads standard "
                   "input; UTF-8)")
    add_model_options(p)
    add_sampling_options(p)
    p.add_argument("--no-echo", action="store_true", help="do not print the prompt before the continuation")
    p.add_argument("--stats", action="store_true", help="print token counts and speed to stderr")
    p.set_defaults(func=run)


def split_args(args) -> tuple:
    """(model path or None, prompt) from the positional arguments, refusing the likely slips: a model
    file with no prompt (it would otherwise become the prompt of the bundled model) and the two in the
    wrong order."""
    if len(args) > 2:
        raise ValueError(f"expected [MODEL] PROMPT, got {len(args)} arguments (quote the prompt)")
    if len(args) == 1:
        (only,) = args
        if is_model_file(only):
            raise ValueError(f"no prompt given ({only} is a model file): add the text to continue, e.g. "
                             f"bitmamba generate {shlex.quote(only)} \"Once upon a time\"")
        if (only.lower().endswith(MODEL_SUFFIXES) and not os.path.exists(only)
                and not any(c.isspace() for c in only)):
            raise ValueError(f"no prompt given, and model file not found: {only}")
        if only.startswith("hf://"):  # a plain owner/name alone may well be a prompt; hf:// never is
            raise ValueError(f"no prompt given ({only} names a model): add the text to continue, e.g. "
                             f"bitmamba generate {shlex.quote(only)} \"Once upon a time\"")
        return None, only
    model, prompt = args
    if not os.path.exists(model) and is_model_file(prompt):
        raise ValueError("MODEL comes before PROMPT: bitmamba generate "
                         f"{shlex.quote(prompt)} {shlex.quote(model)}")
    return model, prompt


def read_prompt(arg: str) -> str:
    if arg == "-":
        prompt = decode_input(sys.stdin.buffer.read(), "the prompt read from standard input")
        if not prompt:
            raise ValueError("the prompt read from standard input is empty: pipe in the text to continue")
        return prompt
    if not arg:
        raise ValueError("the prompt is empty: give the text to continue ('-' reads it from standard input)")
    return text_arg(arg, "the prompt")


def run(args) -> int:
    # Everything that can be refused is checked before the model is loaded and before anything is
    # printed, so an error never lands after the echoed prompt.
    args.model, prompt_arg = split_args(args.args)
    kw = sampling_kwargs(args)
    check_threads(args)
    prompt = read_prompt(prompt_arg)
    model = load_model(args)
    ids = model.tokenizer.encode(prompt)  # fails here when the model has no tokenizer
    written = False
    try:
        if not args.no_echo:
            written = bool(prompt)
            sys.stdout.write(prompt)
            sys.stdout.flush()
        gen = model.stream(ids, **kw)  # feeds the prompt before returning
        for piece in gen:
            written = True
            sys.stdout.write(piece)
            sys.stdout.flush()
    except BaseException:
        # A failure (or Ctrl-C) mid-output: end the line so the error message starts on its own.
        if written:
            sys.stdout.write("\n")
            sys.stdout.flush()
        raise
    sys.stdout.write("\n")
    if args.stats:
        n_prompt, n_gen = gen.prompt_tokens, gen.generated_tokens
        print(f"prompt: {n_prompt} tokens, {n_prompt / max(gen.prefill_seconds, 1e-9):.1f} tok/s; "
              f"generated: {n_gen} tokens, {n_gen / max(gen.decode_seconds, 1e-9):.1f} tok/s", file=sys.stderr)
    return 0
