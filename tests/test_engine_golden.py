"""The engine reproduces ../shared/golden/bit2-random-*.json (an independent numpy reference of
the forward pass in docs/model.md) from the BIT2 files, on every kernel set this CPU runs.

Greedy ids must match wherever the reference's top-1/top-2 margin exceeds 1e-3. Top-5 logits: the engine
equals our float32 numpy reference bit for bit (test_engine_exact.py), and that reference with numpy's own
float32 exp reproduces every golden logit to its printed precision (test_reference_golden.py). The engine's
exp is the correctly rounded one instead of numpy's SIMD approximation, and at one golden step that last-bit
difference flips an int8 code sitting within float rounding of a .5 boundary, which moves 7 of the 168
checked steps by 3e-3 to 8e-3. So: at least 95% of all steps within 1e-3 and none beyond 1e-2 (a real bug,
such as a wrong gate or swapped B/C, moves every step by 0.1 or more).
"""
import json

import numpy as np
import pytest

import bitmamba

GOLDEN = ["bit2-random-d128-l2-h2-v512", "bit2-random-d256-l4-h4-v2048"]



def _step_errors(model, name, gold):
    """Max |engine - golden| over the top-5 logits of every checked step; asserts the greedy ids."""
    errs = []
    for case in gold["cases"]:
        prompt, greedy, top5 = case["prompt"], case["greedy"], case["top5"]
        logits = model.logits(prompt + greedy)  # feed the golden ids (teacher forcing)
        for i, pairs in enumerate(top5):
            row = logits[len(prompt) - 1 + i]
            errs.append(max(abs(float(row[t]) - v) for t, v in pairs))
            vals = sorted((v for _, v in pairs), reverse=True)
            if vals[0] - vals[1] > 1e-3:
                assert int(np.argmax(row)) == greedy[i], f"{name} step {i}: greedy id differs"
    return errs


def test_golden_logits_and_greedy(golden_dir, isa):
    errs = []
    for name in GOLDEN:
        model = bitmamba.load(golden_dir / f"{name}.bin")
        assert model.vocab_size == int(name.split("-v")[1])
        errs += _step_errors(model, name, json.loads((golden_dir / f"{name}.json").read_text()))
    errs = np.array(errs)
    assert errs.size > 100
    assert errs.max() < 1e-2, f"logits off by {errs.max():.4g}"
    assert np.mean(errs > 1e-3) <= 0.05, f"{np.sum(errs > 1e-3)} of {errs.size} steps beyond 1e-3"


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_greedy_decode_path(golden_dir, name, isa):
    """Single-token decode (the generate path) gives the golden greedy ids up to the first near-tie."""
    model = bitmamba.load(golden_dir / f"{name}.bin")
    gold = json.loads((golden_dir / f"{name}.json").read_text())
    for case in gold["cases"]:
        st = model.new_state()
        model.feed(case["prompt"], st)
        ids = model.generate_ids([], state=st, max_new_tokens=len(case["greedy"]), temperature=0.0, top_k=0,
                                 top_p=1.0, min_p=0.0, repeat_penalty=1.0, repeat_window=0, seed=0, ignore_eos=True)
        assert len(ids) == len(case["greedy"])
        for i, pairs in enumerate(case["top5"]):
            vals = sorted((v for _, v in pairs), reverse=True)
            if vals[0] - vals[1] <= 1e-3:
                break  # near-tie: the continuation may legitimately diverge from here
            assert ids[i] == case["greedy"][i], f"{name}: decode step {i}"
