"""What a user sees when they get generate / chat / bench wrong: one line on stderr saying what is wrong
(and what to do), a non-zero exit code, no traceback, and nothing on stdout before it. The same
mistakes made through the Python API raise a ValueError / TypeError naming the argument."""
import os
import struct
import subprocess
import sys

import pytest

pytest.importorskip("bitmamba._C")
import bitmamba  # noqa: E402
from bitmamba.model import SEED_MAX  # noqa: E402
from cli_helpers import ROOT, assert_one_line_error, cli, tiny  # noqa: E402,F401  (tiny is a fixture)


@pytest.fixture(scope="module")
def model(tiny):
    return bitmamba.load(tiny)


# -- 1. seed range ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", ["-1", str(2**64)])
def test_cli_seed_out_of_range(tiny, seed):
    r = cli("generate", str(tiny), "Hi", "-n", "2", "--seed", seed)
    assert_one_line_error(r, "--seed", "2**64 - 1", seed)
    assert r.stdout == ""


def test_api_seed_range(model):
    for seed in (-1, 2**64):
        with pytest.raises(ValueError, match=r"seed must be an integer from 0 to 2\*\*64 - 1"):
            model.stream("Hi", max_new_tokens=1, seed=seed)
    with pytest.raises(TypeError, match="seed must be an integer"):
        model.stream("Hi", max_new_tokens=1, seed=1.5)
    # Both ends of the range are accepted (the C++ sampler's seed is a uint64).
    for seed in (0, SEED_MAX):
        assert model.generate("Hi", max_new_tokens=2, seed=seed) == model.generate("Hi", max_new_tokens=2, seed=seed)


# -- 2. text that is not UTF-8 ------------------------------------------------------------------
def test_cli_prompt_not_utf8(tiny):
    r = cli("generate", str(tiny), b"\xff\xfe", "-n", "2")
    assert_one_line_error(r, "the prompt is not valid UTF-8", "0xFF")
    assert r.stdout == ""
    r = cli("generate", str(tiny), "-", "-n", "2", stdin=b"ok \xfe")
    assert_one_line_error(r, "standard input is not valid UTF-8", "0xFE at offset 3")
    assert r.stdout == ""


def test_cli_chat_input_not_utf8(tiny):
    # From a pipe a bad line ends the run (the whole input is likely in another encoding).
    r = cli("chat", str(tiny), "-n", "2", "-t", "0", stdin=b"hello\n\xffbad\n")
    assert_one_line_error(r, "line 2 of the input is not valid UTF-8", "0xFF")
    r = cli("chat", str(tiny), "-n", "2", "--system", b"\xc3", stdin=b"hi\n")
    assert_one_line_error(r, "--system is not valid UTF-8")
    assert r.stdout == ""


def test_api_lone_surrogates(model):
    with pytest.raises(ValueError, match="not valid Unicode.*U\\+DCFF"):
        model.generate("a\udcff", max_new_tokens=1)
    with pytest.raises(ValueError, match="not valid Unicode"):
        model.tokenizer.encode_batch(["fine", "\udcfe"])
    with pytest.raises(TypeError, match="bytes"):
        model.generate(b"Hi", max_new_tokens=1)  # would otherwise be read as the token ids [72, 105]


# -- 3. sampling options checked before anything is printed --------------------------------------
@pytest.mark.parametrize("opt,value,flag", [
    ("--top-p", "2", "--top-p"), ("--top-p", "0", "--top-p"), ("--top-k", "-1", "--top-k"),
    ("--min-p", "1.5", "--min-p"), ("--repeat-penalty", "0", "--repeat-penalty"),
    ("--repeat-window", "-1", "--repeat-window"), ("-n", "-1", "--max-new-tokens"),
    ("-t", "nan", "--temperature"), ("--seed", "-5", "--seed"),
])
def test_cli_bad_sampling_option_before_echo(tiny, opt, value, flag):
    r = cli("generate", str(tiny), "Hi", opt, value)
    assert_one_line_error(r, flag)
    assert r.stdout == "", "the prompt was echoed before the error"


def test_cli_chat_bad_sampling_option_before_reading(tiny):
    r = cli("chat", str(tiny), "--top-p", "2", stdin="hi\n")
    assert_one_line_error(r, "--top-p must be in (0, 1]")
    assert r.stdout == ""


def test_api_sampling_options_named(model):
    bad = [(dict(top_p=1.5), ValueError, "top_p"), (dict(min_p=-0.1), ValueError, "min_p"),
           (dict(top_k=-1), ValueError, "top_k"), (dict(repeat_penalty=float("inf")), ValueError, "repeat_penalty"),
           (dict(repeat_window=-1), ValueError, "repeat_window"), (dict(max_new_tokens=-1), ValueError, "max_new_tokens"),
           (dict(temperature=float("nan")), ValueError, "temperature"), (dict(temperature="hot"), TypeError, "temperature"),
           (dict(top_k=2.5), TypeError, "top_k")]
    for kw, exc, name in bad:
        with pytest.raises(exc, match=name):
            model.stream("Hi", **kw)


def test_negative_temperature_is_greedy_as_documented(tiny, model):
    # docs/engine.md and the sampler promise temperature <= 0 = greedy, so -1 is accepted, not refused.
    a = cli("generate", str(tiny), "Hi", "-n", "4", "-t", "-1", "--seed", "1")
    b = cli("generate", str(tiny), "Hi", "-n", "4", "-t", "0", "--seed", "2")
    assert a.returncode == 0 and a.stdout == b.stdout
    assert model.generate("Hi", max_new_tokens=4, temperature=-1) == model.generate("Hi", max_new_tokens=4, temperature=0)


# -- 4. a model file but no prompt ----------------------------------------------------------------
def test_cli_model_without_prompt(tiny):
    r = cli("generate", str(tiny), "-n", "3")
    assert_one_line_error(r, "no prompt given", str(tiny))
    assert r.stdout == ""
    r = cli("generate", "Hi", str(tiny), "-n", "3")
    assert_one_line_error(r, "MODEL comes before PROMPT")
    # A model recognised by its magic, whatever its name.
    other = tiny.parent / "model-without-suffix"
    if not other.exists():
        os.symlink(tiny, other)
    assert_one_line_error(cli("generate", str(other), "-n", "3"), "no prompt given")


# -- 5. state files: missing, truncated, corrupt --------------------------------------------------
def _fnv1a(b: bytes) -> int:
    h = 1469598103934665603
    for x in b:
        h = ((h ^ x) * 1099511628211) & (2**64 - 1)
    return h


def test_load_state_errors_name_the_state_file(model, tmp_path):
    missing = tmp_path / "missing.state"
    with pytest.raises(FileNotFoundError, match="state file not found"):
        model.load_state(missing)
    with pytest.raises(bitmamba.FormatError, match=f"cannot open state file '{missing}'"):
        model.native.load_state(str(missing))  # the C++ loader's own message
    st = model.new_state()
    model.feed([1, 2, 3], st)
    good = tmp_path / "good.state"
    st.save(good)
    data = good.read_bytes()
    cases = {"empty": (b"", "truncated"), "short": (data[:5], "truncated"), "header": (data[:40], "truncated"),
             "cut": (data[:-100], "truncated"), "long": (data + b"\0" * 4, "corrupt"),
             "flipped": (data[:100] + bytes([data[100] ^ 1]) + data[101:], "checksum"),
             "foreign": (b"GGUF" + data[4:], "not a bitmamba state file")}
    # A header whose sizes multiply out past 2**64 (to 0 floats) with a valid checksum: refused as
    # corrupt, not read.
    head = b"BMSTATE1" + struct.pack("<7q", 2**26, 2**26, 2**12, 0, 0, 0, 0)
    cases["overflow"] = (head + struct.pack("<Q", _fnv1a(head)), "corrupt")
    for name, (blob, word) in cases.items():
        p = tmp_path / f"{name}.state"
        p.write_bytes(blob)
        with pytest.raises(bitmamba.FormatError, match=word) as e:
            model.load_state(p)
        assert str(p) in str(e.value), name


def test_cli_chat_corrupt_state_says_what_to_do(tiny, tmp_path):
    p = tmp_path / "chat.state"
    p.write_bytes(b"BMSTATE1" + b"\0" * 10)
    r = cli("chat", str(tiny), "--state", str(p), "-n", "2", stdin="hi\n")
    assert_one_line_error(r, "truncated", "delete it")
    assert r.stdout == ""


# -- 6. an unwritable --state path, atomic state saves -------------------------------------------
def test_cli_chat_unwritable_state_fails_before_replying(tiny, tmp_path):
    r = cli("chat", str(tiny), "--state", str(tmp_path / "nodir" / "x.state"), "-n", "4", stdin="hi\n")
    assert_one_line_error(r, "does not exist", "--state")
    assert r.stdout == "", "a reply was generated before the failure"
    r = cli("chat", str(tiny), "--state", str(tmp_path), "-n", "4", stdin="hi\n")
    assert_one_line_error(r, "is a directory")
    assert r.stdout == ""


def test_state_save_failure_keeps_the_previous_file(tmp_path):
    # The file size limit makes the second save's write fail part way (as a full disk would). The
    # state is small enough to sit in a stream buffer, where a failed flush goes unreported.
    script = f"""
import resource, signal, bitmamba
m = bitmamba.Model.random("custom", embed="f32", seed=0, vocab_size=300, d_model=64, n_layers=1, n_groups=2,
                          d_inner=128, n_heads=2)
st = m.new_state(); m.feed([1, 2, 3], st)
path = {str(tmp_path / "s.state")!r}
st.save(path)
m.feed([4, 5], st)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))
try:
    st.save(path)
    print("saved")
except OSError as e:
    print("OSError", e)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
print(m.load_state(path).n_tokens)
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"), BITMAMBA_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.strip().splitlines()
    assert first.startswith("OSError cannot write state file") and "s.state" in first
    assert second == "3"  # the previous state, intact
    assert sorted(os.listdir(tmp_path)) == ["s.state"]  # no temporary file left behind


def test_state_save_error_is_oserror(model, tmp_path):
    with pytest.raises(OSError, match="cannot write state file"):
        model.new_state().save(tmp_path / "nodir" / "x.state")


# -- 7. more threads than cores ------------------------------------------------------------------
def test_cli_threads_above_cores_warns_and_runs(tiny):
    cores = bitmamba.cpu_info()["default_threads"]
    n = min(cores + 1, 1024)
    r = cli("bench", str(tiny), "--threads", str(n), "--prompt-tokens", "4", "--decode-tokens", "2",
            "--repeats", "1", "--bandwidth-mib", "4", "--json")
    assert r.returncode == 0, r.stderr
    warn = [l for l in r.stderr.splitlines() if "warning" in l]
    assert len(warn) == 1 and f"--threads {n}" in warn[0] and f"{cores} CPU cores" in warn[0], r.stderr
    assert '"threads": %d' % n in r.stdout
    r = cli("generate", str(tiny), "Hi", "-n", "1", "--threads", str(n))
    assert r.returncode == 0 and "warning: --threads" in r.stderr
    assert_one_line_error(cli("generate", str(tiny), "Hi", "--threads", "0"), "--threads must be in [1, 1024]")


# -- 8. empty stop strings ------------------------------------------------------------------------
def test_empty_stop_strings_are_ignored(model):
    kw = dict(max_new_tokens=6, temperature=0)
    plain = model.generate("Once upon", **kw)
    assert plain
    for stop in ("", [], None, [""], ("", "")):
        assert model.generate("Once upon", stop=stop, **kw) == plain, repr(stop)
    assert model.generate("Once upon", stop=["", "zq#"], **kw) == model.generate("Once upon", stop=["zq#"], **kw)
    with pytest.raises(TypeError, match="stop"):
        model.generate("Once upon", stop=5, **kw)


def test_cli_empty_stop_is_ignored(tiny):
    a = cli("generate", str(tiny), "Hi", "-n", "4", "-t", "0", "--stop", "")
    b = cli("generate", str(tiny), "Hi", "-n", "4", "-t", "0")
    assert a.returncode == 0 and a.stdout == b.stdout and len(a.stdout) > len("Hi\n")


# -- 9. chat from a pipe: one block per reply ------------------------------------------------------
def test_piped_chat_prints_one_block_per_reply(tiny, model):
    lines = ["hi", "there", "third turn"]
    r = cli("chat", str(tiny), "-n", "8", "-t", "0", stdin="".join(l + "\n" for l in lines))
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and "> " not in r.stdout
    # The replies chat would give, rebuilt with the API (same framing and state handling).
    expected, st = [], model.new_state()
    for text in lines:
        turn = f"User: {text}\nAssistant:"
        before = st.copy()
        reply = model.generate(turn, state=st, max_new_tokens=8, temperature=0, stop=["\nUser:"])
        expected.append(reply.strip())
        st = before
        model.feed(model.tokenizer.encode(turn + reply.rstrip("\n") + "\n"), st)
    assert all("\n\n" not in e for e in expected)
    assert r.stdout.endswith("\n") and not r.stdout.endswith("\n\n")
    assert r.stdout[:-1].split("\n\n") == expected


# -- 10. empty or missing prompt ------------------------------------------------------------------
def test_cli_empty_or_missing_prompt(tiny):
    assert_one_line_error(cli("generate", str(tiny), ""), "the prompt is empty")
    assert_one_line_error(cli("generate", ""), "the prompt is empty")
    assert_one_line_error(cli("generate", str(tiny), "-", stdin=""), "standard input is empty")
    r = cli("generate")
    assert_one_line_error(r, "required", "--help")
    assert r.returncode == 2 and r.stdout == ""
    assert_one_line_error(cli("generate", str(tiny), "a", "b"), "expected [MODEL] PROMPT")


def test_interactive_chat_survives_a_line_that_is_not_utf8(tiny):
    # At a terminal a bad line is reported and the conversation goes on.
    import pty

    master, slave = pty.openpty()
    env = {"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin", "BITMAMBA_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "bitmamba", "chat", str(tiny), "-n", "3", "-t", "0"],
                         stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    os.write(master, b"\xffoops\nhello\n\x04")  # the last byte is end of input (Ctrl-D)
    out, err = p.communicate(timeout=120)
    os.close(master)
    assert p.returncode == 0, err
    err = err.decode()
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "bitmamba chat: error: line 1 of the input is not valid UTF-8 text (byte 0xFF at offset 0): "
        "give UTF-8 text (convert it with iconv -t UTF-8); type the line again"]
    out = out.decode()
    # Asked again after the bad line, answered 'hello', asked again before the end of input.
    assert out.startswith("> > ") and out.endswith("\n> ") and out.count("\n") == 1
