"""The one decode loop (_C.Generator, csrc/model/generator.h) and what is built on it: Model.stream /
generate / generate_ids, their counts, stop tokens and stop strings, the generation defaults, and the
chat command's kept state. The reference for the loop is the plain sequence it replaces: sample from
the state's logits with a Sampler, feed the token, repeat."""
import numpy as np
import pytest

import bitmamba

C = pytest.importorskip("bitmamba._C")

SETTINGS = [
    dict(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, repeat_window=0),
    dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, repeat_window=64),
    dict(temperature=1.3, top_k=0, top_p=0.7, min_p=0.0, repeat_penalty=1.3, repeat_window=5),
]


@pytest.fixture(scope="module")
def model():
    return bitmamba.load(bitmamba.default_model_path())


def reference_loop(m, prompt, n, seed, stop_ids=(), **s):
    """Sampler + feed by hand: the tokens a generation must produce (stop token included)."""
    sampler = C.Sampler(seed=seed, **s)
    window = s["repeat_window"]
    for t in prompt[-window:] if window > 0 else []:
        sampler.accept(t)
    st = m.new_state()
    m.feed(prompt, st)
    out = []
    for _ in range(n):
        tok = sampler.sample(st.logits)
        m.feed([tok], st)
        out.append(tok)
        if tok in stop_ids:
            break
    return out, st


@pytest.mark.parametrize("k", range(len(SETTINGS)))
@pytest.mark.parametrize("prompt_len", [1, 7, 80])
def test_generator_equals_sampler_and_feed(model, k, prompt_len):
    s = SETTINGS[k]
    prompt = [int(x) for x in np.random.default_rng(prompt_len).integers(0, model.vocab_size, prompt_len)]
    want, want_state = reference_loop(model, prompt, 40, seed=11 + k, **s)
    st = model.new_state()
    gen = C.Generator(model.native, st, max_new_tokens=40, seed=11 + k, **s)
    gen.prime(np.array(prompt))
    got = gen.run(40)
    assert got == want
    assert (gen.prompt_tokens, gen.generated_tokens, gen.finish_reason) == (prompt_len, 40, "length")
    assert gen.finished and gen.decode_seconds > 0 and gen.prefill_seconds > 0
    np.testing.assert_array_equal(st.logits, want_state.logits)
    assert st.n_tokens == want_state.n_tokens == prompt_len + 40
    # next() one at a time is the same loop.
    st2 = model.new_state()
    gen2 = C.Generator(model.native, st2, max_new_tokens=40, seed=11 + k, **s)
    gen2.prime(np.array(prompt))
    assert [gen2.next() for _ in range(40)] == want


def test_stop_token_ends_and_is_fed(model):
    prompt = model.tokenizer.encode("Once upon a time")
    free, _ = reference_loop(model, prompt, 30, seed=3, **SETTINGS[1])
    stop = free[5]
    want = free[: free.index(stop) + 1]
    st = model.new_state()
    gen = C.Generator(model.native, st, max_new_tokens=30, seed=3, stop_ids=[stop], **SETTINGS[1])
    gen.prime(np.array(prompt))
    assert gen.run(100) == want
    assert gen.finish_reason == "stop_token" and st.n_tokens == len(prompt) + len(want)
    with pytest.raises(ValueError, match="finished"):
        gen.next()


def test_generator_errors(model):
    st = model.new_state()
    with pytest.raises(ValueError, match="seen no token"):
        C.Generator(model.native, st).next()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        C.Generator(model.native, st, stop_ids=[model.vocab_size])
    with pytest.raises(ValueError, match="max_new_tokens"):
        C.Generator(model.native, st, max_new_tokens=-1)
    with pytest.raises(ValueError, match="top_p"):
        C.Generator(model.native, st, top_p=0.0)
    gen = C.Generator(model.native, st, max_new_tokens=3)
    gen.prime(np.array([1, 2]))
    gen.next()
    with pytest.raises(ValueError, match="prime"):
        gen.prime(np.array([3]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        C.Generator(model.native, model.new_state()).prime(np.array([model.vocab_size]))
    done = C.Generator(model.native, model.new_state(), max_new_tokens=0)
    assert done.finished and done.finish_reason == "length" and done.run(5) == []


def test_generator_keeps_its_state_alive(model):
    st = model.new_state()
    gen = C.Generator(model.native, st, max_new_tokens=4, temperature=0.0)
    gen.prime(np.array([5, 6, 7]))
    del st
    assert len(gen.run(4)) == 4


def test_generate_ids_and_stream_agree(model):
    kw = dict(max_new_tokens=24, seed=5, ignore_eos=True)
    ids = model.generate_ids(model.tokenizer.encode("The cat"), **kw)
    want, _ = reference_loop(model, model.tokenizer.encode("The cat"), 24, seed=5,
                             **{k: v for k, v in bitmamba.model.generation_defaults().items() if k != "max_new_tokens"})
    assert ids == want
    gen = model.stream("The cat", **kw)
    text = "".join(gen)
    assert text == model.tokenizer.decode(ids)
    assert gen.tokens == ids and gen.generated_tokens == 24 and gen.finish_reason == "length"
    assert gen.prompt_tokens == len(model.tokenizer.encode("The cat"))
    assert model.generate("The cat", **kw) == text


def test_eos_ends_stream_and_is_left_out(model):
    # Find a seed whose free-running continuation hits EOS, then check stream stops there.
    eos = model.eos_token_id
    prompt = model.tokenizer.encode("Hello.")
    for seed in range(200):
        free = model.generate_ids(prompt, max_new_tokens=64, seed=seed, temperature=1.5, ignore_eos=True)
        if eos in free:
            break
    else:
        pytest.fail("no seed reached EOS in 200 tries")
    cut = free.index(eos)
    st = model.new_state()
    gen = model.stream(prompt, max_new_tokens=64, seed=seed, temperature=1.5, state=st)
    text = "".join(gen)
    assert gen.tokens == free[:cut] and gen.finish_reason == "stop_token"
    assert gen.generated_tokens == cut + 1 and st.n_tokens == len(prompt) + cut + 1
    assert text == model.tokenizer.decode(free[:cut])
    assert model.generate_ids(prompt, max_new_tokens=64, seed=seed, temperature=1.5) == free[:cut]


def test_stop_string_cuts_text_and_finishes(model):
    kw = dict(max_new_tokens=40, seed=2, ignore_eos=True)
    full = model.generate("Once upon a time", **kw)
    assert len(full) > 12
    stop = full[5:9]
    gen = model.stream("Once upon a time", stop=[stop, "never-appears-xyz"], **kw)
    assert "".join(gen) == full[: full.find(stop)]
    assert gen.finish_reason == "stop_string" and gen.generated_tokens < 40


def test_keep_prompt_state_is_the_state_after_the_prompt(model):
    st = model.new_state()
    gen = model.stream("A short prompt", max_new_tokens=5, seed=1, state=st, keep_prompt_state=True)
    "".join(gen)
    ref = model.new_state()
    model.feed(model.tokenizer.encode("A short prompt"), ref)
    assert gen.prompt_state.n_tokens == ref.n_tokens
    np.testing.assert_array_equal(gen.prompt_state.logits, ref.logits)
    assert st.n_tokens == ref.n_tokens + gen.generated_tokens


def test_defaults_come_from_the_engine(model):
    from bitmamba.cli import build_parser

    d = bitmamba.model.generation_defaults()
    assert d == dict(max_new_tokens=128, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1,
                     repeat_window=64)
    assert bitmamba.model.check_sampling() == dict(d, seed=None)
    args = build_parser().parse_args(["generate", "x"])
    assert {k: getattr(args, k) for k in d} == d


def test_chat_state_holds_turn_reply_and_newline(model, monkeypatch, capsys, tmp_path):
    """The chat command's kept state = the turn and the reply as shown, each fed once."""
    import io

    from bitmamba.cli import main

    path = tmp_path / "chat.state"

    class Stdin:
        buffer = io.BytesIO(b"hi there\n")

        @staticmethod
        def isatty():
            return False

    monkeypatch.setattr("sys.stdin", Stdin)
    assert main(["chat", "--state", str(path), "-n", "6", "--seed", "4"]) == 0
    reply = capsys.readouterr().out.strip("\n")
    kept = model.load_state(path)
    turn = "User: hi there\nAssistant:"
    gen = model.stream(turn, max_new_tokens=6, seed=4, stop=["\nUser:"])
    shown = "".join(gen)
    assert shown.strip() == reply
    ref = model.new_state()
    model.feed(model.tokenizer.encode(turn), ref)
    model.feed(model.tokenizer.encode(shown.rstrip("\n") + "\n"), ref)
    assert kept.n_tokens == ref.n_tokens
    np.testing.assert_array_equal(kept.logits, ref.logits)
