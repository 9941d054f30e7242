"""`bitmamba generate MODEL "prompt"`: stream a continuation to the terminal."""
from __future__ import annotations

import sys
import time

from ._common import add_model_options, add_sampling_options, load_model, sampling_kwargs


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate text from a prompt (streams to the terminal)",
                       description="Continue PROMPT with a GGUF or BIT2 model, printing text as it is "
                       "generated. Without MODEL the bundled default model is used: "
                       "bitmamba generate \"Once upon a time\".")
    p.add_argument("args", metavar="[MODEL] PROMPT", nargs="+",
                   help="model file (.gguf or BIT2 .bin; default: the bundled model) and the text to "
                   "continue ('-' reads standard input)")
    add_model_options(p)
    add_sampling_options(p)
    p.add_argument("--no-echo", action="store_true", help="do not print the prompt before the continuation")
    p.add_argument("--stats", action="store_true", help="print token counts and speed to stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    if len(args.args) > 2:
        raise ValueError(f"expected [MODEL] PROMPT, got {len(args.args)} arguments (quote the prompt)")
    args.model = args.args[0] if len(args.args) == 2 else None
    prompt = args.args[-1]
    prompt = sys.stdin.read() if prompt == "-" else prompt
    model = load_model(args)
    model.tokenizer  # fail before echoing anything when the model has no tokenizer
    if not args.no_echo:
        sys.stdout.write(prompt)
        sys.stdout.flush()
    state = model.new_state()
    t0 = time.perf_counter()
    it = model.stream(prompt, state=state, **sampling_kwargs(args))
    t1 = time.perf_counter()  # stream() feeds the prompt before returning
    for piece in it:
        sys.stdout.write(piece)
        sys.stdout.flush()
    t2 = time.perf_counter()
    sys.stdout.write("\n")
    if args.stats:
        n_prompt = len(model.tokenizer.encode(prompt))
        n_gen = state.n_tokens - n_prompt
        print(f"prompt: {n_prompt} tokens, {n_prompt / max(t1 - t0, 1e-9):.1f} tok/s; "
              f"generated: {n_gen} tokens, {n_gen / max(t2 - t1, 1e-9):.1f} tok/s", file=sys.stderr)
    return 0
