"""Hand-worked checks of the task templates, HellaSwag preprocessing, the WikiText detokenizer and page
splitting, and the data loaders (lm-evaluation-harness definitions)."""
import json

import pytest

from bitmamba.eval import data, prompts
from bitmamba.eval.tasks import TASKS, resolve_tasks


# ------------------------------------------------------------------------------------------ templates
def test_arc_template_and_gold():
    doc = {"id": "x", "question": "Which gas do plants take in?",
           "choices": {"text": ["oxygen", "carbon dioxide", "helium"], "label": ["A", "B", "C"]},
           "answerKey": "B"}
    assert prompts.arc_prompt(doc) == "Question: Which gas do plants take in?\nAnswer:"
    assert prompts.arc_choices(doc) == ["oxygen", "carbon dioxide", "helium"]
    assert prompts.arc_gold(doc) == 1
    numeric = dict(doc, choices={"text": ["a", "b", "c", "d"], "label": ["1", "2", "3", "4"]}, answerKey="4")
    assert prompts.arc_gold(numeric) == 3
    with pytest.raises(ValueError, match="answerKey"):
        prompts.arc_gold(dict(doc, answerKey="E"))


def test_piqa_template():
    doc = {"goal": "dresser", "sol1": "replace drawer with bobby pin ", "sol2": "finish, woodgrain", "label": 1}
    assert prompts.piqa_prompt(doc) == "Question: dresser\nAnswer:"
    assert prompts.piqa_choices(doc) == ["replace drawer with bobby pin ", "finish, woodgrain"]
    assert prompts.piqa_gold(doc) == 1


def test_boolq_template_and_labels():
    doc = {"passage": "Ethanol fuel -- All biomass goes through steps.", "question": "is ethanol a fuel",
           "label": True}
    assert prompts.boolq_prompt(doc) == ("Ethanol fuel -- All biomass goes through steps.\n"
                                         "Question: is ethanol a fuel?\nAnswer:")
    assert prompts.BOOLQ_CHOICES == ["no", "yes"]
    assert prompts.boolq_gold(doc) == 1
    assert prompts.boolq_gold(dict(doc, label=False)) == 0
    assert prompts.boolq_gold(dict(doc, label=0)) == 0
    assert prompts.boolq_gold(dict(doc, label="True")) == 1
    with pytest.raises(ValueError):
        prompts.boolq_gold(dict(doc, label="maybe"))


# ---------------------------------------------------------------------------------------- HellaSwag
def test_hellaswag_preprocess_by_hand():
    # strip; " [title]" -> ". "; drop [step]; "  " -> " " once.
    assert prompts.hellaswag_preprocess("  How to X [title] Do Y [step] Z  ") == "How to X. Do Y Z"
    assert prompts.hellaswag_preprocess("[header] Intro [substeps] a") == " Intro a"
    assert prompts.hellaswag_preprocess("a    b") == "a  b"  # one pass of "  " -> " ", as in the harness


def test_hellaswag_query_from_hf_schema():
    doc = {"activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he",
           "endings": [" is using wrap to wrap a pair of skis.", "is ripping level tiles off."], "label": "1"}
    assert prompts.hellaswag_query(doc) == "Roof shingle removal: A man is sitting on a roof. He"
    assert prompts.hellaswag_choices(doc) == ["is using wrap to wrap a pair of skis.", "is ripping level tiles off."]
    assert prompts.hellaswag_gold(doc) == 1
    # str.capitalize lower-cases the rest of ctx_b; the harness does the same.
    assert prompts.hellaswag_query(dict(doc, ctx_b="the Lady")) == "Roof shingle removal: A man is sitting on a roof. The lady"
    # Empty ctx_b (most WikiHow items): the trailing space is stripped.
    wh = {"activity_label": "Health", "ctx_a": "[header] How to rest [title] Sleep well.", "ctx_b": ""}
    assert prompts.hellaswag_query(wh) == "Health: How to rest. Sleep well."


def test_hellaswag_flat_context_rebuilds_capitalisation():
    f = prompts.capitalize_trailing_fragment
    assert f("Roof shingle removal: A man is sitting on a roof. he") == "Roof shingle removal: A man is sitting on a roof. He"
    assert f("Health: How to X. Know what oils help.") == "Health: How to X. Know what oils help."
    assert f("Clean and jerk: A lady walks. She bends down! the lady") == "Clean and jerk: A lady walks. She bends down! The lady"
    assert f("Label: the man") == "Label: The man"  # no sentence end: fragment after the label


def test_hellaswag_text_format_matches_harness_query(data_dir):
    rows, path, schema = data.load_hellaswag(data_dir / "eval")
    assert schema == "flat" and len(rows) == 10042
    docs = TASKS["hellaswag"]._from_rows(rows[:1], schema)
    # rowanz/hellaswag val item 0: activity_label "Roof shingle removal", ctx_a "A man is sitting on a roof.",
    # ctx_b "he", label 3.
    assert docs[0].context == "Roof shingle removal: A man is sitting on a roof. He"
    assert docs[0].gold == 3 and docs[0].choices[3] == "starts pulling up roofing on a roof."


def test_hellaswag_text_parser_errors():
    with pytest.raises(ValueError, match="multiple of 6"):
        data.parse_hellaswag_text(["a: b", "0", "x", "y"])
    with pytest.raises(ValueError, match="not an integer"):
        data.parse_hellaswag_text(["a: b", "zero", "w", "x", "y", "z"])
    items = data.parse_hellaswag_text(["a: b", "2", "w", "x", "y", "z", ""])
    assert items == [{"ctx": "a: b", "label": 2, "endings": ["w", "x", "y", "z"]}]


def test_hellaswag_hf_jsonl_is_preferred(tmp_path):
    d = tmp_path / "hellaswag"
    d.mkdir()
    row = {"activity_label": "Roof shingle removal", "ctx_a": "A man is on a roof.", "ctx_b": "he",
           "endings": ["a", "b", "c", "d"], "label": "2"}
    (d / "hellaswag_val.jsonl").write_text(json.dumps(row) + "\n")
    (d / "hellaswag_val_full.txt").write_text("x: y\n0\na\nb\nc\nd\n")
    docs, where = TASKS["hellaswag"].load(tmp_path)
    assert where.endswith("hellaswag_val.jsonl")
    assert docs[0].context == "Roof shingle removal: A man is on a roof. He" and docs[0].gold == 2


# ----------------------------------------------------------------------------------------- WikiText
def test_wikitext_detokenizer_by_hand():
    page = " = Title = \n \n The value is 1 @,@ 000 @.@ 5 km , and it 's ( big ) . \n = = Section = = \n"
    assert prompts.wikitext_detokenize(page) == (
        " = Title =\n\nThe value is 1,000.5 km, and it's (big).\n== Section ==\n")
    assert prompts.wikitext_detokenize('he said " hello there " ; a @-@ b') == 'he said "hello there"; a-b'
    assert prompts.wikitext_detokenize("the players ' union , 20 \u00b0 C") == "the players' union, 20\u00b0C"
    assert prompts.wikitext_detokenize("= = = Sub = = =") == "=== Sub ==="
    assert prompts.wikitext_detokenize("N years") == "N years"  # " N " needs a space on both sides
    assert prompts.wikitext_detokenize("a N b") == "a 1 b"


def test_wikitext_pages_and_word_count():
    raw = " \n = A = \n \n x y \n = = Sub = = \n z \n = B = \n w \n"
    pages = prompts.wikitext_pages(raw)
    assert pages == [" = A = \n \n x y \n = = Sub = = \n z ", " = B = \n w \n"]
    # re.split on whitespace counts the empty strings at both ends, as the harness does.
    assert prompts.wikitext_word_count(" = B = \n w \n") == 6
    assert prompts.wikitext_word_count("a b") == 2


def test_wikitext_rows_rebuild_raw_file(data_dir):
    d = data_dir / "eval" / "wikitext2"
    raw = (d / "wiki.test.raw").read_text(encoding="utf-8")
    rows = [json.loads(ln)["text"] for ln in (d / "wikitext2_raw_test_rows.jsonl").open(encoding="utf-8")]
    assert prompts.wikitext_raw_from_rows(rows) == raw
    pages = prompts.wikitext_pages(raw)
    assert len(pages) == 62  # the document-level test split the harness evaluates
    assert pages[0].startswith(" = Robert Boulter = \n")


def test_wikitext_loaders_agree(tmp_path, data_dir):
    src = data_dir / "eval" / "wikitext2"
    a, _ = data.load_wikitext_pages(data_dir / "eval")
    (tmp_path / "wikitext2").mkdir()
    (tmp_path / "wikitext2" / "wikitext2_raw_test_rows.jsonl").write_bytes(
        (src / "wikitext2_raw_test_rows.jsonl").read_bytes())
    b, where = data.load_wikitext_pages(tmp_path)
    assert where.name == "wikitext2_raw_test_rows.jsonl" and a == b


def test_wikitext_document_level_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    (tmp_path / "wikitext2").mkdir()
    pq.write_table(pa.table({"page": [" = A = \n x \n", " = B = \n y \n"]}),
                   tmp_path / "wikitext2" / "test-00000-of-00001.parquet")
    docs, _ = TASKS["wikitext2"].load(tmp_path)
    assert [d.text for d in docs] == [" = A =\nx\n", " = B =\ny\n"]
    assert [d.words for d in docs] == [6, 6] and docs[0].bytes == len(" = A = \n x \n")


# ----------------------------------------------------------------------------------- data and tasks
def test_piqa_label_count_mismatch(tmp_path):
    (tmp_path / "piqa").mkdir()
    (tmp_path / "piqa" / "valid.jsonl").write_text('{"goal": "g", "sol1": "a", "sol2": "b"}\n')
    (tmp_path / "piqa" / "valid-labels.lst").write_text("0\n1\n")
    with pytest.raises(ValueError, match="2 labels but"):
        data.load_piqa(tmp_path)


def test_missing_files_name_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-dir") as e:
        TASKS["boolq"].load(tmp_path)
    assert "boolq/BoolQ-val.jsonl" in str(e.value) and "BITMAMBA_DATA_DIR" in str(e.value)


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("BITMAMBA_DATA_DIR", str(tmp_path))
    assert data.default_data_dir() == tmp_path
    monkeypatch.delenv("BITMAMBA_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    assert data.default_data_dir() == tmp_path.parent / "shared" / "data" / "eval"


def test_resolve_tasks():
    assert resolve_tasks("all") == ["arc_easy", "arc_challenge", "piqa", "hellaswag", "boolq", "wikitext2"]
    assert resolve_tasks("wikitext, piqa,piqa") == ["wikitext2", "piqa"]
    with pytest.raises(ValueError, match="unknown task 'mmlu'.*arc_easy"):
        resolve_tasks("piqa,mmlu")
    with pytest.raises(ValueError, match="no tasks"):
        resolve_tasks(" , ")


@pytest.mark.parametrize("name,n,first_gold", [("arc_easy", 2376, 0), ("arc_challenge", 1172, None),
                                               ("piqa", 1838, 0), ("boolq", 3270, None)])
def test_real_files_load(data_dir, name, n, first_gold):
    docs, _ = TASKS[name].load(data_dir / "eval")
    assert len(docs) == n
    assert all(0 <= d.gold < len(d.choices) for d in docs)
    if first_gold is not None:
        assert docs[0].gold == first_gold
    assert TASKS[name].load(data_dir / "eval", limit=3)[0] == docs[:3]


def test_hub_rows_are_converted(monkeypatch):
    """--source hub: rows in the hub datasets' schemas (as `datasets` returns them) become the same docs."""
    import sys
    import types

    rows = {
        ("allenai/ai2_arc", "ARC-Easy"): [{"id": "a", "question": "Q?", "answerKey": "B",
                                           "choices": {"text": ["x", "y"], "label": ["A", "B"]}}],
        ("baber/piqa", None): [{"goal": "g", "sol1": "s1", "sol2": "s2", "label": 1}],
        ("Rowan/hellaswag", None): [{"activity_label": "Act", "ctx_a": "One.", "ctx_b": "two",
                                     "endings": ["e [title] f", "g"], "label": "0"}],
        ("super_glue", "boolq"): [{"passage": "P", "question": "q", "label": 0}],
        ("EleutherAI/wikitext_document_level", "wikitext-2-raw-v1"): [{"page": " = T = \n a @-@ b \n"}],
    }
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda path, name=None, split=None: rows[(path, name)]
    monkeypatch.setitem(sys.modules, "datasets", fake)
    d, where = TASKS["arc_easy"].load(source="hub")
    assert (d[0].context, d[0].choices, d[0].gold) == ("Question: Q?\nAnswer:", ["x", "y"], 1)
    assert where == "hub:allenai/ai2_arc/ARC-Easy/test"
    assert TASKS["piqa"].load(source="hub")[0][0].gold == 1
    h = TASKS["hellaswag"].load(source="hub")[0][0]
    assert (h.context, h.choices, h.gold) == ("Act: One. Two", ["e. f", "g"], 0)
    b = TASKS["boolq"].load(source="hub")[0][0]
    assert (b.context, b.gold) == ("P\nQuestion: q?\nAnswer:", 0)
    w = TASKS["wikitext2"].load(source="hub")[0][0]
    assert (w.text, w.words) == (" = T =\na-b\n", 8)  # "", =, T, =, a, @-@, b, ""
    with pytest.raises(ValueError, match="unknown data source"):
        TASKS["piqa"].load(source="ftp")
