"""The Mamba-2 selective scan in plain PyTorch: the sequential recurrence (the definition, and decode), and the
chunked SSD form (parallel within chunks, recurrent across them) used for training.

Shapes: x [B, T, H, P], dt [B, T, H] (after softplus), A [H] (negative), Bm and Cm [B, T, G, N],
state [B, H, P, N]. Per head h in group g = h // (H // G):
    state = exp(A[h] dt[t,h]) state + dt[t,h] x[t,h,:] (outer) Bm[t,g,:]
    y[t,h,:] = state @ Cm[t,g,:]
The D skip term and gating are outside these functions.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch


def _expand_groups(m: torch.Tensor, n_heads: int) -> torch.Tensor:
    G = m.shape[2]
    return m if G == n_heads else m.repeat_interleave(n_heads // G, dim=2)


def ssm_scan_sequential(x, dt, A, Bm, Cm, state: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    Bsz, T, H, P = x.shape
    N = Bm.shape[-1]
    Bh, Ch = _expand_groups(Bm, H), _expand_groups(Cm, H)
    h = x.new_zeros(Bsz, H, P, N) if state is None else state
    ys = []
    for t in range(T):
        dA = torch.exp(A * dt[:, t])  # [B, H]
        h = h * dA[..., None, None] + x[:, t, :, :, None] * (Bh[:, t] * dt[:, t, :, None])[:, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", h, Ch[:, t]))
    y = torch.stack(ys, dim=1) if ys else x.new_zeros(Bsz, 0, H, P)
    return y, h


def ssd_chunked(x, dt, A, Bm, Cm, chunk_size: int = 64,
                state: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Same result as ssm_scan_sequential (up to float rounding), in O(T * chunk) work with matmuls.

    Within a chunk, position t sees position s <= t through the decay exp(sum_{s<r<=t} A dt_r), written as
    exp(cum_t - cum_s) with cum the in-chunk cumulative sum of A*dt; across chunks a short loop carries the
    state (T / chunk_size steps)."""
    Bsz, T, H, P = x.shape
    N = Bm.shape[-1]
    if T == 0:
        return x.new_zeros(Bsz, 0, H, P), (x.new_zeros(Bsz, H, P, N) if state is None else state)
    L = chunk_size
    pad = (-T) % L
    Bh, Ch = _expand_groups(Bm, H), _expand_groups(Cm, H)
    if pad:
        # Zero dt in the padding: no decay and no input, so the final state is unaffected.
        x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad))
        dt = torch.nn.functional.pad(dt, (0, 0, 0, pad))
        Bh = torch.nn.functional.pad(Bh, (0, 0, 0, 0, 0, pad))
        Ch = torch.nn.functional.pad(Ch, (0, 0, 0, 0, 0, pad))
    nc = (T + pad) // L
    xc = x.reshape(Bsz, nc, L, H, P)
    dtc = dt.reshape(Bsz, nc, L, H)
    Bc = Bh.reshape(Bsz, nc, L, H, N)
    Cc = Ch.reshape(Bsz, nc, L, H, N)
    a = (A * dtc).permute(0, 1, 3, 2)  # [B, c, H, L]  log-decay per step
    cum = torch.cumsum(a, dim=-1)  # [B, c, H, L]

    # 1. Within-chunk outputs: y_t = sum_{s<=t} (C_t . B_s) exp(cum_t - cum_s) dt_s x_s
    diff = cum[..., :, None] - cum[..., None, :]  # [B, c, H, t, s]
    causal = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
    decay = torch.exp(diff.masked_fill(~causal, float("-inf")))
    scores = torch.einsum("bclhn,bcshn->bchls", Cc, Bc) * decay  # [B, c, H, t, s]
    xdt = xc * dtc[..., None]  # [B, c, L, H, P]
    y = torch.einsum("bchls,bcshp->bclhp", scores, xdt)

    # 2. State contributed by each chunk alone, at its end: sum_s exp(cum_end - cum_s) dt_s x_s B_s^T
    to_end = torch.exp(cum[..., -1:] - cum)  # [B, c, H, L]
    chunk_states = torch.einsum("bchl,bclhp,bclhn->bchpn", to_end, xdt, Bc)

    # 3. Carry states across chunks (short sequential loop), and add each chunk's incoming state's output.
    h = x.new_zeros(Bsz, H, P, N) if state is None else state
    chunk_decay = torch.exp(cum[..., -1])  # [B, c, H]
    from_start = torch.exp(cum)  # [B, c, H, L]: decay from the chunk's start to position t (inclusive)
    ys = []
    for c in range(nc):
        ys.append(y[:, c] + torch.einsum("blhn,bhpn,bhl->blhp", Cc[:, c], h, from_start[:, c]))
        h = h * chunk_decay[:, c, :, None, None] + chunk_states[:, c]
    y = torch.stack(ys, dim=1).reshape(Bsz, nc * L, H, P)[:, :T]
    return y, h
