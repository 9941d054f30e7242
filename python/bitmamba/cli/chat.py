"""`bitmamba chat MODEL`: multi-turn conversation; the model state is kept between turns (only
the new turn is fed each time) and can be persisted with --state FILE."""
from __future__ import annotations

import os
import sys

from ._common import add_model_options, add_sampling_options, check_threads, decode_input, load_model, \
    sampling_kwargs, text_arg

USER, BOT = "User:", "Assistant:"


def register(sub) -> None:
    p = sub.add_parser("chat", help="interactive multi-turn chat (state kept between turns)",
                       description="Chat with a model. Turns are framed as 'User: ...' / 'Assistant: ...'; "
                       "the reply stops at the next 'User:' line, EOS or --max-new-tokens. Commands: "
                       "/reset clears the conversation, /quit (or end of input) exits. With input from a pipe or "
                       "file there is no '> ' prompt and the replies are separated by blank lines.")
    p.add_argument("model", metavar="MODEL", nargs="?", default=None,
                   help="model file (.gguf or BIT2 .bin) or Hugging Face repo id (owner/name[@revision], "
                   "hf://...; default: the bundled model)")
    p.add_argument("--state", metavar="FILE", default=None,
                   help="load the conversation state from FILE when it exists and save it (atomically) after "
                   "every turn")
    p.add_argument("--system", default="", help="text placed before the first turn")
    add_model_options(p)
    add_sampling_options(p)
    p.set_defaults(func=run)


def check_state_path(path: str) -> None:
    """Refuse a --state FILE that could not be saved, before any reply is generated."""
    if os.path.isdir(path):
        raise ValueError(f"--state {path} is a directory: give a file path")
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise ValueError(f"cannot save the chat state to {path}: directory {directory} does not exist "
                         "(create it or choose another --state path)")
    # The save writes a new file in that directory and renames it over FILE: both need these rights.
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"cannot save the chat state to {path}: directory {directory} is not writable "
                         "(choose another --state path)")


class ReplyWriter:
    """Streams one reply to stdout without its leading whitespace (the space after 'Assistant:') and
    with trailing whitespace held back until more text follows, so a reply always ends with exactly
    one newline, whatever the model generated last."""

    def __init__(self, out):
        self.out = out
        self.started = False
        self.held = ""

    def write(self, piece: str) -> None:
        if not self.started:
            piece = piece.lstrip()
            if not piece:
                return
            self.started = True
        text = self.held + piece
        body = text.rstrip()
        self.held = text[len(body):]
        if body:
            self.out.write(body)
            self.out.flush()

    def end(self) -> None:
        self.out.write("\n")
        self.out.flush()


def run(args) -> int:
    # Options and the --state path are checked before the model is loaded or a reply generated.
    kw = sampling_kwargs(args)
    kw["stop"] = (kw["stop"] or []) + ["\n" + USER]
    check_threads(args)
    system = text_arg(args.system, "--system")
    if args.state:
        check_state_path(args.state)
    model = load_model(args)
    model.tokenizer  # fail before reading input when the model has no tokenizer
    if args.state and os.path.exists(args.state):
        try:
            state = model.load_state(args.state)
        except ValueError as e:
            raise ValueError(f"{e}: delete it or choose another --state file to start a new conversation") from None
        print(f"(resumed {state.n_tokens} tokens of conversation from {args.state})", file=sys.stderr)
    else:
        state = model.new_state()
    # Interactive: a '> ' prompt before each turn. From a pipe or file: no prompt, and a blank line
    # between replies, so the output is one block per reply.
    interactive = sys.stdin.isatty()
    prefix = system + "\n" if system and state.n_tokens == 0 else ""
    replies = 0
    lineno = 0
    while True:
        if interactive:
            sys.stdout.write("> ")
            sys.stdout.flush()
        raw = sys.stdin.buffer.readline()
        if not raw:
            break
        lineno += 1
        try:
            line = decode_input(raw, f"line {lineno} of the input")
        except ValueError as e:
            if not interactive:
                raise
            # At the terminal a mistyped line need not end the conversation.
            print(f"bitmamba chat: error: {e}; type the line again", file=sys.stderr)
            continue
        text = line.rstrip("\r\n")
        if text.strip() in ("/quit", "/exit"):
            break
        if text.strip() == "/reset":
            state = model.new_state()
            prefix = system + "\n" if system else ""
            continue
        if not text.strip():
            continue
        turn = f"{prefix}{USER} {text}\n{BOT}"
        prefix = ""
        if replies and not interactive:
            sys.stdout.write("\n")
        out = ReplyWriter(sys.stdout)
        # The turn is fed once. Generation runs past a stop string inside the state, so the kept state
        # is the one right after the turn plus the reply as shown and a newline.
        gen = model.stream(turn, state=state, keep_prompt_state=True, **kw)
        pieces = []
        for piece in gen:
            pieces.append(piece)
            out.write(piece)
        out.end()
        replies += 1
        state = gen.prompt_state
        model.feed(model.tokenizer.encode("".join(pieces).rstrip("\n") + "\n"), state)
        if args.state:
            state.save(args.state)
    return 0
