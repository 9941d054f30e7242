"""A plain numpy (float64) forward of docs/model.md ("Forward pass"), both layouts, for checking the engine.

Weights are a dict: embed [V, d], norm_f [d], lm_norm [d], lm_head (codes [V, d], scale_w) and
layers: list of dicts in_norm, in_codes, in_scale, conv_w [conv_dim, K], conv_b, dt_bias [H], A [H]
(negative), D [d_inner], ssm_norm (mamba2 only), out_norm, out_codes, out_scale.
"""
from __future__ import annotations

import struct

import numpy as np


def bitlinear(x, g, codes, scale_w, eps=1e-6):
    xn = x / np.sqrt(np.mean(x * x) + eps) * g
    s = 127.0 / (np.max(np.abs(xn)) + 1e-5)
    q = np.clip(np.round(xn * s), -128, 127)
    return (codes.astype(np.float64) @ q) / (s * scale_w)


def silu(v):
    return v / (1.0 + np.exp(-v))


def softplus(v):
    return np.where(v > 20, v, np.log1p(np.exp(np.minimum(v, 20))))


class Reference:
    def __init__(self, w, cfg):
        self.w, self.c = w, cfg
        H, di, N, G, K = cfg["n_heads"], cfg["d_inner"], cfg["d_state"], cfg["n_groups"], cfg["conv_kernel"]
        conv_dim = di + 2 * G * N if cfg["layout"] == "mamba2" else di
        self.conv = [np.zeros((K - 1, conv_dim)) for _ in w["layers"]]
        self.h = [np.zeros((H, di // H, N)) for _ in w["layers"]]

    def step(self, tok):
        c, w = self.c, self.w
        H, di, N, G = c["n_heads"], c["d_inner"], c["d_state"], c["n_groups"]
        P, gn = di // H, G * N
        eps = c.get("norm_eps", 1e-6)
        x = w["embed"][tok].astype(np.float64)
        for li, L in enumerate(w["layers"]):
            p = bitlinear(x, L["in_norm"], L["in_codes"], L["in_scale"], eps)
            z, xbc, dt = p[:di], p[di:2 * di + 2 * gn], p[2 * di + 2 * gn:]
            conv_in = xbc if c["layout"] == "mamba2" else xbc[:di]
            win = np.vstack([self.conv[li], conv_in[None]])
            self.conv[li] = win[1:]
            xc = silu(L["conv_b"] + np.sum(L["conv_w"].T * win, axis=0))
            if c["layout"] == "mamba2":
                xs, B, C = xc[:di], xc[di:di + gn], xc[di + gn:]
            else:
                xs, B, C = xc, xbc[di:di + gn], xbc[di + gn:di + 2 * gn]
            dtv = softplus(dt + L["dt_bias"])
            y = np.zeros(di)
            for h in range(H):
                g = h // (H // G)
                Bg, Cg = B[g * N:(g + 1) * N], C[g * N:(g + 1) * N]
                xh = xs[h * P:(h + 1) * P]
                self.h[li][h] = self.h[li][h] * np.exp(L["A"][h] * dtv[h]) + dtv[h] * xh[:, None] * Bg[None, :]
                y[h * P:(h + 1) * P] = self.h[li][h] @ Cg + L["D"][h * P:(h + 1) * P] * xh
            y = y * silu(z)
            if c["layout"] == "mamba2":
                gs = di // G
                yg = y.reshape(G, gs)
                y = (yg / np.sqrt(np.mean(yg * yg, axis=1, keepdims=True) + c.get("ssm_norm_eps", 1e-5))).reshape(-1) * L["ssm_norm"]
            x = x + bitlinear(y, L["out_norm"], L["out_codes"], L["out_scale"], eps)
        xn = x / np.sqrt(np.mean(x * x) + eps) * w["norm_f"]
        return bitlinear(xn, w["lm_norm"], w["lm_codes"], w["lm_scale"], eps)


def read_bit2(path):
    """BIT2 file -> (weights, cfg) for Reference."""
    b = open(path, "rb").read()
    magic, V, d, nl, H = struct.unpack_from("<5i", b, 0)
    assert magic == 0x42495432
    pos = 20

    def rec():
        nonlocal pos
        kind = struct.unpack_from("<i", b, pos)[0]
        if kind == 0:
            nd = struct.unpack_from("<i", b, pos + 4)[0]
            dims = struct.unpack_from(f"<{nd}i", b, pos + 8)
            n = int(np.prod(dims))
            a = np.frombuffer(b, np.float32, n, pos + 8 + 4 * nd).astype(np.float64).reshape(dims)
            pos += 8 + 4 * nd + 4 * n
            return a
        r, cc, s = struct.unpack_from("<iif", b, pos + 4)
        raw = np.frombuffer(b, np.uint8, r * cc // 4, pos + 16)
        codes = np.stack([(raw >> (2 * k)) & 3 for k in range(4)], axis=1).reshape(-1).astype(np.int8) - 1
        codes[codes == 2] = 1
        pos += 16 + r * cc // 4
        return codes.reshape(r, cc), float(s)

    di = 2 * d
    w = {"embed": rec(), "layers": []}
    for _ in range(nl):
        L = {"in_norm": rec()}
        L["in_codes"], L["in_scale"] = rec()
        L["conv_w"] = rec().reshape(di, -1)
        L["conv_b"] = rec()
        L["dt_bias"] = rec()
        L["A"] = -np.exp(rec())
        D = rec()
        L["D"] = D if D.size == di else np.repeat(D, di // H)
        L["out_norm"] = rec()
        L["out_codes"], L["out_scale"] = rec()
        w["layers"].append(L)
    w["norm_f"] = rec()
    w["lm_norm"] = rec()
    w["lm_codes"], w["lm_scale"] = rec()
    cfg = dict(vocab_size=V, d_model=d, n_layers=nl, n_heads=H, d_inner=di, d_state=1, n_groups=H,
               conv_kernel=4, layout="bitmamba2")
    return w, cfg
