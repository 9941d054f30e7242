"""Engine behaviour on small models built in the test: both GGUF layouts against a numpy float64
forward, every ternary/embedding encoding, state copy/save/restore, prefill vs decode, scoring API,
sampler properties and generation."""
import json
import zlib

import numpy as np
import pytest

import bitmamba
from engine_fixtures import random_weights, write_bit2, write_gguf
from engine_reference import Reference

C = pytest.importorskip("bitmamba._C")


def ref_logits(w, cfg, ids):
    ref = Reference(w, cfg)
    return np.array([ref.step(t) for t in ids])


def close_rows(a, b, tol=1e-3):
    """Per-position max abs difference within tol on at least 75% of positions. The rest is room for
    an int8 rounding-boundary flip (see test_engine_golden), which in these random models can move
    later logits by up to ~0.5 for many steps; a real error (wrong layout, B/C swapped, missing norm)
    is off at nearly every position. Seeds are fixed, so the test is deterministic."""
    err = np.abs(a - b).max(axis=1)
    assert np.mean(err <= tol) >= 0.75, err
    return err


@pytest.fixture(scope="module")
def mamba2_model(tmp_path_factory):
    rng = np.random.default_rng(7)
    w, cfg = random_weights(rng, vocab=300, d_model=256, n_layers=2, n_heads=4, d_state=16, n_groups=2,
                            layout="mamba2")
    path = tmp_path_factory.mktemp("m2") / "mamba2.gguf"
    write_gguf(path, w, cfg, ternary="TQ2_0")
    return w, cfg, path


@pytest.mark.parametrize("ternary", ["TQ2_0", "TQ1_0", "I8"])
@pytest.mark.parametrize("layout", ["bitmamba2", "mamba2"])
def test_gguf_layouts_match_numpy_forward(tmp_path, layout, ternary):
    rng = np.random.default_rng(zlib.crc32(f"{layout}-{ternary}".encode()))
    if layout == "mamba2":
        w, cfg = random_weights(rng, d_state=8, n_groups=2, layout="mamba2")
    else:
        w, cfg = random_weights(rng)
    write_gguf(tmp_path / "m.gguf", w, cfg, ternary=ternary, d_per_head=(layout == "bitmamba2"))
    if layout == "bitmamba2":  # per-head D broadcast: give the reference the same values
        for L in w["layers"]:
            L["D"] = np.repeat(L["D"][:: cfg["d_inner"] // cfg["n_heads"]], cfg["d_inner"] // cfg["n_heads"])
    m = bitmamba.load(tmp_path / "m.gguf")
    assert m.config["layout"] == layout and m.config["d_state"] == cfg["d_state"]
    ids = list(rng.integers(0, cfg["vocab_size"], 20))
    close_rows(m.logits(ids), ref_logits(w, cfg, ids))


@pytest.mark.parametrize("embed", ["F16", "Q8_0"])
def test_gguf_embedding_encodings(tmp_path, embed):
    import gguf

    rng = np.random.default_rng(3)
    w, cfg = random_weights(rng)
    write_gguf(tmp_path / "m.gguf", w, cfg, embed=embed)
    # The reference sees the embedding exactly as stored.
    e = w["embed"].astype(np.float32)
    if embed == "F16":
        w["embed"] = e.astype(np.float16).astype(np.float64)
    else:
        Q = gguf.GGMLQuantizationType.Q8_0
        w["embed"] = gguf.quants.dequantize(gguf.quants.quantize(e, Q), Q).astype(np.float64)
    m = bitmamba.load(tmp_path / "m.gguf")
    assert m.config["embedding_type"] == embed.lower()
    ids = list(rng.integers(0, cfg["vocab_size"], 12))
    close_rows(m.logits(ids), ref_logits(w, cfg, ids))


def test_bit2_writer_and_gguf_agree(tmp_path):
    rng = np.random.default_rng(11)
    w, cfg = random_weights(rng)
    write_bit2(tmp_path / "m.bin", w, cfg)
    write_gguf(tmp_path / "m.gguf", w, cfg)
    ids = list(rng.integers(0, cfg["vocab_size"], 16))
    a = bitmamba.load(tmp_path / "m.bin").logits(ids)
    b = bitmamba.load(tmp_path / "m.gguf").logits(ids)
    np.testing.assert_array_equal(a, b)  # same weights, same arithmetic: bit-identical


def test_prefill_then_step_equals_longer_prefill(mamba2_model):
    _, cfg, path = mamba2_model
    m = bitmamba.load(path)
    rng = np.random.default_rng(0)
    # Longer than one prefill chunk (256) so chunk boundaries are crossed too.
    ids = list(rng.integers(0, cfg["vocab_size"], 300))
    for T in (1, 5, 255, 256, 299):
        a = m.new_state()
        m.feed(ids[:T], a)
        m.feed(ids[T:T + 1], a)
        b = m.new_state()
        m.feed(ids[:T + 1], b)
        np.testing.assert_allclose(a.logits, b.logits, rtol=0, atol=2e-4)
        assert a.n_tokens == b.n_tokens == T + 1
    # logits() rows equal the state's logits after each prefix
    L = m.logits(ids[:40])
    s = m.new_state()
    for i in range(40):
        m.feed([ids[i]], s)
        np.testing.assert_allclose(L[i], s.logits, atol=2e-4)


def test_state_copy_save_restore(mamba2_model, tmp_path):
    _, cfg, path = mamba2_model
    m = bitmamba.load(path)
    ids = list(range(1, 30))
    s = m.new_state()
    m.feed(ids[:20], s)
    c = s.copy()
    m.feed(ids[20:], s)
    m.feed(ids[20:], c)
    np.testing.assert_array_equal(s.logits, c.logits)
    s.save(tmp_path / "s.bin")
    r = m.load_state(tmp_path / "s.bin")
    assert r.n_tokens == s.n_tokens == 29
    m.feed([5], r)
    m.feed([5], s)
    np.testing.assert_array_equal(r.logits, s.logits)
    # corrupt / truncated / foreign state files are rejected
    raw = (tmp_path / "s.bin").read_bytes()
    (tmp_path / "bad.bin").write_bytes(raw[:-10])
    with pytest.raises(bitmamba.FormatError):
        m.load_state(tmp_path / "bad.bin")
    flipped = bytearray(raw)
    flipped[100] ^= 0x40
    (tmp_path / "bad.bin").write_bytes(bytes(flipped))
    with pytest.raises(bitmamba.FormatError, match="checksum"):
        m.load_state(tmp_path / "bad.bin")
    other = bitmamba.Model.random("custom", vocab_size=300, d_model=64, n_layers=1, n_heads=2, d_inner=128,
                                  d_state=1, n_groups=2)
    with pytest.raises(bitmamba.FormatError, match="another shape"):
        other.load_state(tmp_path / "s.bin")
    with pytest.raises(ValueError):
        other.feed([1], s)


def test_logprobs_loglikelihood_and_errors(mamba2_model):
    _, cfg, path = mamba2_model
    m = bitmamba.load(path)
    ctx, cont = [3, 14, 15, 92], [65, 35, 89, 79]
    L = m.logits(ctx + cont)
    ls = L.astype(np.float64) - np.log(np.exp(L.astype(np.float64) - L.max(1, keepdims=True)).sum(1, keepdims=True)) - L.max(1, keepdims=True)
    expect = np.array([ls[len(ctx) - 1 + i, t] for i, t in enumerate(cont)])
    st = m.new_state()
    m.feed(ctx, st)
    lp, greedy = m.logprobs(cont, st)
    assert lp.dtype == np.float64 and greedy.dtype == bool and lp.shape == (4,)
    np.testing.assert_allclose(lp, expect, atol=1e-4)
    np.testing.assert_array_equal(greedy, [L[len(ctx) - 1 + i].argmax() == t for i, t in enumerate(cont)])
    assert st.n_tokens == 8
    ll, g = m.loglikelihood(ctx, cont)
    assert abs(ll - expect.sum()) < 1e-3 and g == bool(greedy.all())
    # a greedy continuation is reported as such
    st = m.new_state()
    m.feed(ctx, st)
    best = int(st.logits.argmax())
    assert m.logprobs([best], st)[1][0]
    with pytest.raises(ValueError, match="seen at least one token"):
        m.logprobs([1, 2], m.new_state())
    with pytest.raises(ValueError, match="outside the vocabulary"):
        m.logits([1, cfg["vocab_size"]])
    with pytest.raises(ValueError):
        m.logits([-1])
    assert m.logits([]).shape == (0, cfg["vocab_size"])


def _sampler(**kw):
    args = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, repeat_window=64, seed=0)
    args.update(kw)
    return C.Sampler(**args)


def test_sampler_masks():
    logits = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05], np.float32))
    p = _sampler().probabilities(logits)
    np.testing.assert_allclose(p, [0.5, 0.2, 0.15, 0.1, 0.05], rtol=1e-5)
    p = _sampler(top_k=2).probabilities(logits)
    np.testing.assert_allclose(p, [0.5 / 0.7, 0.2 / 0.7, 0, 0, 0], rtol=1e-5)
    p = _sampler(top_p=0.8).probabilities(logits)  # 0.5+0.2 < 0.8 <= 0.85
    np.testing.assert_allclose(p, np.array([0.5, 0.2, 0.15, 0, 0]) / 0.85, rtol=1e-5)
    p = _sampler(min_p=0.25).probabilities(logits)  # keep p >= 0.125
    np.testing.assert_allclose(p, np.array([0.5, 0.2, 0.15, 0, 0]) / 0.85, rtol=1e-5)
    p = _sampler(temperature=0.5).probabilities(logits)
    q = np.array([0.5, 0.2, 0.15, 0.1, 0.05]) ** 2
    np.testing.assert_allclose(p, q / q.sum(), rtol=1e-5)
    p = _sampler(temperature=0).probabilities(logits)
    np.testing.assert_array_equal(p, [1, 0, 0, 0, 0])
    with pytest.raises(ValueError):
        _sampler(top_p=0.0)
    with pytest.raises(ValueError):
        _sampler(repeat_penalty=0.0)


def test_sampler_repetition_penalty_and_determinism():
    logits = np.array([2.0, 1.9, -1.0, 0.5], np.float32)
    s = _sampler(temperature=0, repeat_penalty=5.0, repeat_window=2)
    s.accept(0)
    assert s.sample(logits) == 1  # 2.0 / 5 = 0.4 < 1.9
    # window 2 now holds [0, 1]: both penalised (0.4, 0.38); 0.5 wins
    assert s.sample(logits) == 3
    # negative logits are multiplied (pushed further down)
    s = _sampler(temperature=1.0, repeat_penalty=2.0)
    s.accept(2)
    p = s.probabilities(logits)
    e = np.exp(np.array([2.0, 1.9, -2.0, 0.5]) - 2.0)
    np.testing.assert_allclose(p, e / e.sum(), rtol=1e-5)
    rng = np.random.default_rng(0)
    big = rng.normal(size=1000).astype(np.float32)
    a = [_sampler(seed=42).sample(big) for _ in range(3)]
    s1, s2, s3 = _sampler(seed=42), _sampler(seed=42), _sampler(seed=43)
    seq1 = [s1.sample(big) for _ in range(50)]
    seq2 = [s2.sample(big) for _ in range(50)]
    seq3 = [s3.sample(big) for _ in range(50)]
    assert seq1 == seq2 and seq1 != seq3 and len(set(a)) == 1
    # frequencies follow the distribution (loose: 4000 draws over 5 outcomes)
    five = np.log(np.array([0.4, 0.3, 0.2, 0.08, 0.02], np.float32))
    s = _sampler(seed=1, repeat_window=0)
    counts = np.bincount([s.sample(five) for _ in range(4000)], minlength=5) / 4000
    np.testing.assert_allclose(counts, [0.4, 0.3, 0.2, 0.08, 0.02], atol=0.03)


@pytest.fixture(scope="module")
def gpt2_model():
    # vocab 50257 with the bundled GPT-2 tokenizer; tiny otherwise
    return bitmamba.Model.random("custom", embed="f32", seed=5, vocab_size=50257, d_model=64, n_layers=1,
                                 n_heads=2, d_inner=128, d_state=1, n_groups=2)


def test_generate_stream_seed_and_stop(gpt2_model):
    m = gpt2_model
    assert m.eos_token_id == 50256 and m.vocab_size == 50257
    kw = dict(max_new_tokens=20, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
    a = m.generate("Hello world", seed=3, **kw)
    b = "".join(m.stream("Hello world", seed=3, **kw))
    c = m.generate("Hello world", seed=4, **kw)
    assert a == b and a != c and len(a) > 0
    g1 = m.generate("Hello", max_new_tokens=10, temperature=0)
    g2 = m.generate("Hello", max_new_tokens=10, temperature=0, seed=99)
    assert g1 == g2
    # greedy text equals decoding the argmax chain
    st = m.new_state()
    m.feed(m.tokenizer.encode("Hello"), st)
    ids = []
    for _ in range(10):
        t = int(st.logits.argmax())
        if t == m.eos_token_id:
            break
        ids.append(t)
        m.feed([t], st)
    assert g1 == m.tokenizer.decode(ids)
    # stop strings: output is cut before the first stop string
    full = m.generate("Hello world", seed=3, **kw)
    if len(full) > 4:
        stop = full[2:4]
        cut = m.generate("Hello world", seed=3, stop=[stop], **kw)
        assert cut == full[: full.find(stop)]
    with pytest.raises(ValueError, match="empty prompt"):
        m.generate("")
    # continuing a state: prompt may be empty then
    st = m.new_state()
    m.generate("Hi", state=st, max_new_tokens=3, temperature=0)
    n = st.n_tokens
    m.generate("", state=st, max_new_tokens=3, temperature=0)
    assert st.n_tokens > n


def test_stream_holds_back_split_utf8(gpt2_model):
    from bitmamba.tokenizer import StreamDecoder

    tok = gpt2_model.tokenizer
    text = "日本語のテキスト 🙂 ok"
    ids = tok.encode(text)
    d = StreamDecoder(tok)
    pieces = [d.push(i) for i in ids] + [d.flush()]
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


def test_config_and_repr(mamba2_model):
    _, cfg, path = mamba2_model
    m = bitmamba.load(path)
    for k in ("vocab_size", "d_model", "n_layers", "n_heads", "d_state", "n_groups"):
        assert m.config[k] == cfg[k]
    assert m.config["format"] == "gguf" and "mamba2" in repr(m)
    assert m.eos_token_id == cfg["vocab_size"] - 1
    with pytest.raises(ValueError, match="no tokenizer"):
        m.tokenizer.encode("x")


def test_gil_released_during_forward():
    import threading
    import time

    m = bitmamba.Model.random("custom", embed="f32", seed=2, vocab_size=4096, d_model=512, n_layers=4,
                              n_heads=8, d_inner=1024, d_state=1, n_groups=8)
    # The call must be long enough to observe; a fast machine gets a longer input.
    for n_ids in (1024, 4096, 16384):
        ids = np.arange(n_ids) % 4000 + 1
        span = {}

        def work():
            st = m.new_state()
            span["start"] = time.perf_counter()
            m.native.feed(st, ids)  # one C++ call
            span["end"] = time.perf_counter()

        th = threading.Thread(target=work)
        stamps = []
        th.start()
        while th.is_alive():
            time.sleep(0.001)
            stamps.append(time.perf_counter())  # needs the GIL
        th.join()
        lo, hi = span["start"] + 0.01, span["end"] - 0.01
        if hi - lo >= 0.05:
            break
    assert hi - lo >= 0.05, "even the longest call was too short to observe"
    inside = sum(lo < t < hi for t in stamps)
    # Holding the GIL for the whole call would leave no stamp inside it.
    assert inside >= 5, (inside, hi - lo)


def test_bitmamba2_layout_shape_checked_when_built():
    """The bitmamba2 forward is the d_state 1, n_groups = n_heads case: another shape is refused when the
    model is built, not at its first token."""
    with pytest.raises(ValueError, match="bitmamba2 layout needs d_state 1 and n_groups = n_heads"):
        bitmamba.Model.random("custom", vocab_size=64, d_model=64, n_layers=1, d_inner=128, n_heads=4,
                              n_groups=1)
    with pytest.raises(ValueError, match="bitmamba2 layout needs"):
        bitmamba.Model.random("custom", vocab_size=64, d_model=64, n_layers=1, d_inner=128, n_heads=4,
                              n_groups=4, d_state=8)
    m = bitmamba.Model.random("custom", vocab_size=64, d_model=64, n_layers=1, d_inner=128, n_heads=4,
                              n_groups=1, d_state=8, layout="mamba2")
    assert m.logits([1, 2]).shape == (2, 64)


def test_unknown_layout_is_an_error():
    with pytest.raises(ValueError, match="unknown layout 'mamba3'"):
        bitmamba.Model.random("custom", vocab_size=64, d_model=64, n_layers=1, d_inner=128, n_heads=4,
                              n_groups=4, layout="mamba3")
