"""Comparing logits of two implementations of the same quantized model.

Both compute identical integers (ternary codes, int8 activations, accumulators), but their float32 reductions
(RMSNorm means, conv, scan) round in different orders, ~1e-7 apart. When an activation lands within that of a
rounding tie (x * s = k + 0.5) the two pick different int8 codes; the logits of that position then differ by up
to a few 1e-2 and, through the recurrent state, so may later ones. On a random model with 10^5 quantized values
per prompt this happens now and then (seen on random 255M-shaped weights after 6 of 8 tokens); on the small
test models it has not happened on this machine, but another CPU's float32 reduction order may cause one.
So: the leading positions must agree to `atol` (an error in the model math shows from the first positions on),
at least `min_leading` of them, and no position may differ by more than `flip_atol`.
"""
import numpy as np


def assert_logits_match(got, want, atol=1e-5, flip_atol=0.1, min_leading=0.5, what=""):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    err = np.abs(got - want).reshape(got.shape[0], -1).max(axis=1)
    bad = np.nonzero(err > atol)[0]
    leading = int(bad[0]) if bad.size else len(err)
    assert leading >= min_leading * len(err), (
        f"{what}: logits differ from position {leading} of {len(err)} (max error there {err[leading]:.3g})")
    assert err.max() <= flip_atol, f"{what}: max logit error {err.max():.3g}"
