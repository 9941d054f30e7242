"""`bitmamba chat MODEL`: multi-turn conversation; the model state is kept between turns (only
the new turn is fed each time) and can be persisted with --state FILE."""
from __future__ import annotations

import os
import sys

from ._common import add_model_options, add_sampling_options, load_model, sampling_kwargs

USER, BOT = "User:", "Assistant:"


def register(sub) -> None:
    p = sub.add_parser("chat", help="interactive multi-turn chat (state kept between turns)",
                       description="Chat with a model. Turns are framed as 'User: ...' / 'Assistant: ...'; "
                       "the reply stops at the next 'User:' line, EOS or --max-new-tokens. Commands: "
                       "/reset clears the conversation, /quit (or end of input) exits.")
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="model file (.gguf or BIT2 .bin; default: the bundled model)")
    p.add_argument("--state", metavar="FILE", default=None,
                   help="load the conversation state from FILE when it exists and save it after every turn")
    p.add_argument("--system", default="", help="text placed before the first turn")
    add_model_options(p)
    add_sampling_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    model = load_model(args)
    kw = sampling_kwargs(args)
    kw["stop"] = (kw["stop"] or []) + ["\n" + USER]
    if args.state and os.path.exists(args.state):
        state = model.load_state(args.state)
        print(f"(resumed {state.n_tokens} tokens of conversation from {args.state})", file=sys.stderr)
    else:
        state = model.new_state()
    interactive = sys.stdin.isatty()
    prefix = args.system + "\n" if args.system and state.n_tokens == 0 else ""
    while True:
        if interactive:
            sys.stdout.write("> ")
            sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            break
        text = line.rstrip("\n")
        if text.strip() in ("/quit", "/exit"):
            break
        if text.strip() == "/reset":
            state = model.new_state()
            prefix = args.system + "\n" if args.system else ""
            continue
        if not text.strip():
            continue
        turn = f"{prefix}{USER} {text}\n{BOT}"
        prefix = ""
        # Generation runs past a stop string inside the state, so the kept state is rebuilt from a
        # copy taken before the turn: it then holds exactly the turn, the reply shown and a newline.
        before = state.copy()
        pieces = []
        for piece in model.stream(turn, state=state, **kw):
            pieces.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        state = before
        model.feed(model.tokenizer.encode(turn + "".join(pieces).rstrip("\n") + "\n"), state)
        if args.state:
            state.save(args.state)
    return 0
