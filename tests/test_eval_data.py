"""Evaluation data files and models as users give them: every data error names the file and the line
(or row) counted from 1 with the full JSON error; MODEL may be a directory."""
import bz2
import gzip
import json
import shutil

import pytest

from bitmamba.cli import main as cli_main
from bitmamba.eval import data
from bitmamba.eval.tasks import TASKS

PIQA = {"goal": "g", "sol1": "a", "sol2": "b"}
ARC = {"id": "q1", "question": "Q?", "answerKey": "A", "choices": {"text": ["x", "y"], "label": ["A", "B"]}}


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")


def test_json_errors_are_complete_and_located(tmp_path):
    f = tmp_path / "arc" / "ARC-Easy-test.jsonl"
    _write(f, [json.dumps(ARC), "", '{"question": "a\tb"}'])  # a raw tab inside a JSON string
    with pytest.raises(ValueError) as e:
        TASKS["arc_easy"].load(tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"{f}: not valid JSON at line 3, column 16: Invalid control character;"), msg


def test_schema_errors_count_lines_from_one(tmp_path):
    # PIQA: the first item (line 1 of the file) lacks sol2
    _write(tmp_path / "piqa" / "valid.jsonl", [json.dumps({"goal": "g", "sol1": "a"})] + [json.dumps(PIQA)])
    _write(tmp_path / "piqa" / "valid-labels.lst", ["0", "1"])
    with pytest.raises(ValueError, match=r"piqa/valid\.jsonl: line 1: lacks sol2; expected the official PIQA"):
        TASKS["piqa"].load(tmp_path)
    # ... after a blank line, the file's line number, not the record's index
    _write(tmp_path / "piqa" / "valid.jsonl", ["", json.dumps(PIQA), "[1, 2]"])
    with pytest.raises(ValueError, match=r"valid\.jsonl: line 3: a JSON list, not an object"):
        TASKS["piqa"].load(tmp_path)
    # ... a bad label, on its own line of the labels file
    _write(tmp_path / "piqa" / "valid.jsonl", [json.dumps(PIQA), json.dumps(PIQA)])
    _write(tmp_path / "piqa" / "valid-labels.lst", ["0", "yes"])
    with pytest.raises(ValueError, match=r"valid-labels\.lst: line 2: label 'yes' is not 0 or 1"):
        TASKS["piqa"].load(tmp_path)
    # ARC: a record far from the start (only the first 5 were checked before) and a bad answer key
    rows = [json.dumps(ARC)] * 7
    _write(tmp_path / "arc" / "ARC-Easy-test.jsonl", rows + [json.dumps({k: ARC[k] for k in ("id", "question")})])
    with pytest.raises(ValueError, match=r"ARC-Easy-test\.jsonl: line 8: lacks choices, answerKey"):
        TASKS["arc_easy"].load(tmp_path)
    _write(tmp_path / "arc" / "ARC-Easy-test.jsonl", rows + [json.dumps(dict(ARC, answerKey="E"))])
    with pytest.raises(ValueError, match=r"ARC-Easy-test\.jsonl: line 8: ARC item q1: answerKey 'E'"):
        TASKS["arc_easy"].load(tmp_path)
    # BoolQ: a label that is no boolean, line 2
    _write(tmp_path / "boolq" / "BoolQ-val.jsonl", [json.dumps({"question": "q", "passage": "p", "label": True}),
                                                    json.dumps({"question": "q", "passage": "p", "label": "x"})])
    with pytest.raises(ValueError, match=r"BoolQ-val\.jsonl: line 2: BoolQ label 'x'"):
        TASKS["boolq"].load(tmp_path)


def test_hellaswag_text_errors_name_the_file(tmp_path):
    f = tmp_path / "hellaswag" / "hellaswag_val_full.txt.bz2"
    f.parent.mkdir()
    f.write_bytes(bz2.compress(b"a: b\n0\nw\nx\ny\nz\nc: d\nzero\nw\nx\ny\nz\n"))
    with pytest.raises(ValueError, match=rf"{f}: line 8: label 'zero' is not an integer"):
        TASKS["hellaswag"].load(tmp_path)
    f.write_bytes(bz2.compress(b"a: b\n0\nw\nx\ny\nz\nc: d\n")[:-9])  # a cut-off download
    with pytest.raises(ValueError, match=rf"{f}: cannot read"):
        TASKS["hellaswag"].load(tmp_path)


def test_unreadable_files_name_the_file(tmp_path):
    f = tmp_path / "boolq" / "BoolQ-val.jsonl"
    _write(f, [json.dumps({"question": "q", "passage": "p", "label": True})])
    f.write_bytes(f.read_bytes() + b'{"question": "\xff"}\n')
    with pytest.raises(ValueError, match=rf"{f}: not UTF-8 text at line 2 \(byte 0xff\)"):
        TASKS["boolq"].load(tmp_path)
    f.unlink()
    g = tmp_path / "arc" / "ARC-Easy-test.jsonl.gz"
    g.parent.mkdir()
    g.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=rf"{g}: cannot read"):
        TASKS["arc_easy"].load(tmp_path)
    g.write_bytes(gzip.compress((json.dumps(ARC) + "\n").encode()))
    assert len(TASKS["arc_easy"].load(tmp_path)[0]) == 1


def test_cli_data_error_is_one_line(tmp_path, capsys):
    _write(tmp_path / "piqa" / "valid.jsonl", ['{"goal": "g", "sol1": "a"'])
    _write(tmp_path / "piqa" / "valid-labels.lst", ["0"])
    assert cli_main(["eval", "--tasks", "piqa", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "valid.jsonl: not valid JSON at line 1, column 26: Expecting ','" in err
    assert "Traceback" not in err


# ---- MODEL as a directory -----------------------------------------------------------------------------
@pytest.fixture()
def eval_data(data_dir):
    return data_dir / "eval"


def test_model_directory(tmp_path, eval_data, capsys):
    pytest.importorskip("bitmamba._C")
    import bitmamba

    def run(model):
        return cli_main(["eval", str(model), "--tasks", "arc_easy", "--limit", "2", "--data-dir", str(eval_data),
                         "--no-progress"])

    d = tmp_path / "models"
    d.mkdir()
    (d / "notes.txt").write_text("not a model")
    (d / "pytorch_model.bin").write_bytes(b"PK\x03\x04 a torch pickle, not BIT2")
    shutil.copyfile(bitmamba.default_model_path(), d / "m.gguf")
    assert run(d) == 0
    out = capsys.readouterr()
    assert "evaluating m.gguf" in out.err and "arc_easy" in out.out
    shutil.copyfile(bitmamba.default_model_path(), d / "n.gguf")
    assert run(d) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds 2 model files (m.gguf, n.gguf): name the one" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(empty) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no model file" in err and "config.json + model.safetensors" in err


def test_pytorch_directory_is_converted(tmp_path, eval_data, capsys):
    pytest.importorskip("bitmamba._C")
    torch = pytest.importorskip("torch")
    from bitmamba.nn import BitMambaConfig, BitMambaLM

    torch.manual_seed(0)
    d = tmp_path / "final"
    BitMambaLM(BitMambaConfig(vocab_size=50257, d_model=32, n_layers=1, n_heads=2)).save_pretrained(d)
    saved = sorted(p.name for p in d.iterdir())
    out = tmp_path / "r.json"
    assert cli_main(["eval", str(d), "--tasks", "arc_easy", "--limit", "2", "--data-dir", str(eval_data),
                     "--no-progress", "--output", str(out)]) == 0
    assert "converted to a temporary GGUF" in capsys.readouterr().err
    res = json.loads(out.read_text())
    assert res["tasks"]["arc_easy"]["n_docs"] == 2 and "acc" in res["results"]["arc_easy"]
    assert sorted(p.name for p in d.iterdir()) == saved  # nothing left there
