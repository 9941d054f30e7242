"""`bitmamba generate / chat / bench` end to end on a tiny GGUF with the GPT-2 tokenizer embedded."""
import json

import pytest

pytest.importorskip("bitmamba._C")
from cli_helpers import cli, tiny  # noqa: E402,F401  (tiny is a fixture)


def test_generate_is_seeded_and_streams(tiny):
    a = cli("generate", str(tiny), "Hello world", "-n", "12", "--seed", "5", "--stats")
    b = cli("generate", str(tiny), "Hello world", "-n", "12", "--seed", "5")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and a.stdout.startswith("Hello world")
    assert "generated:" in a.stderr
    g = cli("generate", str(tiny), "Hello", "-n", "5", "-t", "0", "--no-echo")
    import bitmamba

    assert g.stdout == bitmamba.load(tiny).generate("Hello", max_new_tokens=5, temperature=0) + "\n"


def test_generate_errors_are_one_line(tiny, tmp_path):
    r = cli("generate", str(tmp_path / "missing.gguf"), "x")
    assert r.returncode == 1 and "not found" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    r = cli("generate", str(tmp_path / "bad.gguf"), "x")
    assert r.returncode == 1 and "truncated" in r.stderr and "Traceback" not in r.stderr


def test_chat_keeps_and_persists_state(tiny, tmp_path):
    st = tmp_path / "chat.state"
    r = cli("chat", str(tiny), "--state", str(st), "-n", "4", "--seed", "1", stdin="hi there\nsecond turn\n")
    assert r.returncode == 0, r.stderr
    assert st.exists()
    import bitmamba

    m = bitmamba.load(tiny)
    n1 = m.load_state(st).n_tokens
    assert n1 > len(m.tokenizer.encode("User: hi there\nAssistant:")) * 2
    r = cli("chat", str(tiny), "--state", str(st), "-n", "4", "--seed", "1", stdin="third\n")
    assert r.returncode == 0 and "resumed" in r.stderr
    assert m.load_state(st).n_tokens > n1


def test_bench_json(tiny):
    r = cli("bench", str(tiny), "--prompt-tokens", "16", "--decode-tokens", "4", "--repeats", "1",
            "--bandwidth-mib", "16", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["decode_tok_s"] > 0 and d["prefill_tok_s"] > 0 and d["peak_rss_mb"] > 0
    assert 0 < d["roofline_fraction"] and d["threads"] == 1
    r = cli("bench", str(tiny), "--prompt-tokens", "8", "--decode-tokens", "2", "--repeats", "1", "--bandwidth-mib", "16")
    lines = dict(l.split(": ", 1) for l in r.stdout.strip().splitlines())
    assert lines["decode"].endswith(" tok/s") and lines["prefill"].endswith(" tok/s")


def test_bench_pairs_each_decode_run_with_a_bandwidth_test(tiny):
    import statistics
    import sys

    r = cli("bench", str(tiny), "--prompt-tokens", "8", "--decode-tokens", "8", "--repeats", "3",
            "--bandwidth-mib", "512", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    runs, bws, fr = d["decode_runs"], d["read_bandwidth_runs"], d["roofline_runs"]
    assert len(runs) == len(bws) == len(fr) == 3
    # Each run's fraction divides that run by the bandwidth measured right after it; the figure is
    # their median (the JSON rounds each input, hence the tolerance).
    for dec, bw, f in zip(runs, bws, fr):
        assert f == pytest.approx(dec * d["bytes_per_step"] / (bw * 1e9), rel=0.02)
    assert d["roofline_fraction"] == pytest.approx(statistics.median(fr), abs=1e-3)
    assert d["read_bandwidth_gb_s"] == pytest.approx(statistics.median(bws), abs=0.01)
    if sys.platform.startswith("linux"):
        # The 512 MiB test buffer is not counted in the model's peak memory.
        assert d["bandwidth_paired"] is True and d["peak_rss_mb"] < 512
    r = cli("bench", str(tiny), "--prompt-tokens", "8", "--decode-tokens", "2", "--repeats", "2",
            "--bandwidth-mib", "16")
    line = dict(l.split(": ", 1) for l in r.stdout.strip().splitlines())["roofline"]
    assert "(runs " in line and "steps/s)" in line


def test_bench_profile_phases_cover_the_decode_time(tiny):
    r = cli("bench", str(tiny), "--prompt-tokens", "8", "--decode-tokens", "32", "--repeats", "1",
            "--bandwidth-mib", "16", "--profile", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    prof = d["decode_profile_us_per_token"]
    assert set(prof) == {"norm_quantize", "in_proj", "conv_scan_gate", "out_proj", "other", "head"}
    assert all(v >= 0 for v in prof.values()) and prof["in_proj"] > 0 and prof["head"] > 0
    # The phases tile the forward pass: their sum is the decode time per token less the sampler and
    # the Python loop (allow generous slack for a loaded machine).
    per_token_us = 1e6 / d["decode_tok_s"]
    assert 0.3 * per_token_us < sum(prof.values()) <= 1.05 * per_token_us
    r = cli("bench", str(tiny), "--prompt-tokens", "8", "--decode-tokens", "2", "--repeats", "1",
            "--bandwidth-mib", "16", "--profile")
    assert "decode_in_proj: " in r.stdout and r.stdout.rstrip().endswith("us/token")


def test_bench_batch_packing_and_kernel_choices(tiny):
    runs = {}
    for packing in ("decode", "base3"):
        r = cli("bench", str(tiny), "--prompt-tokens", "8", "--decode-tokens", "3", "--repeats", "1",
                "--bandwidth-mib", "16", "--batch", "3", "--packing", packing, "--json")
        assert r.returncode == 0, r.stderr
        d = runs[packing] = json.loads(r.stdout)
        assert d["batch"] == 3 and d["decode_loop"] == "batch_step" and d["packing_policy"] == packing
        assert d["decode_tok_s_aggregate"] == pytest.approx(3 * d["decode_tok_s"], rel=1e-3, abs=0.02)
        assert [k["matrix"] for k in d["kernels"]] == ["in_proj", "out_proj", "lm_head"]
        assert {k["packing"] for k in d["kernels"]} == {packing}
        assert all(k["kernel"] for k in d["kernels"])
        # One step reads the weights once and one embedding row per sequence: 2 rows more than a token.
        extra = d["bytes_per_step"] - d["bytes_per_token"]
        assert extra > 0 and extra % 2 == 0
    # The 1.6-bit packing reads fewer bytes per token (what the roofline fraction divides by).
    assert runs["base3"]["bytes_per_token"] < runs["decode"]["bytes_per_token"]
    r = cli("bench", str(tiny), "--prompt-tokens", "8", "--decode-tokens", "2", "--repeats", "1",
            "--bandwidth-mib", "16", "--batch", "2")
    lines = dict(l.split(": ", 1) for l in r.stdout.strip().splitlines())
    assert lines["batch"] == "2" and lines["decode_aggregate"].endswith(" tok/s")
    assert lines["kernel_in_proj"].split()[0] in ("decode", "lut", "base3")
    r = cli("bench", str(tiny), "--batch", "0")
    assert r.returncode != 0 and "--batch" in r.stderr
