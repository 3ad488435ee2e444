#!/usr/bin/env python3
"""Times the PyTorch peers of bench/cuda/device_bench.cpp on the same GPU in the same run and
prints our numbers against theirs. Usage: peers.py ours.json [peers.json]"""
import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.testing import do_bench


def ms(fn):
    return do_bench(fn, warmup=25, rep=100, return_mode="median")


def rope_tables(positions, d, theta=10000.0):
    inv = theta ** (-torch.arange(0, d // 2, dtype=torch.float64, device="cuda") * 2 / d)
    a = torch.arange(positions, dtype=torch.float64, device="cuda")[:, None] * inv[None, :]
    return torch.cos(a).float(), torch.sin(a).float()


def rope(x, cos, sin):  # x [B,H,S,D], "rotate half" pairing as in core/rope.hpp
    d = x.shape[-1] // 2
    lo, hi = x[..., :d].float(), x[..., d:].float()
    return torch.cat([lo * cos - hi * sin, lo * sin + hi * cos], dim=-1).to(x.dtype)


def main():
    ours = json.load(open(sys.argv[1]))
    peers = {"torch": torch.__version__, "device": torch.cuda.get_device_name()}
    torch.manual_seed(0)
    bf = torch.bfloat16

    # Fused prefill attention, 4K causal, bf16, 32 heads x 128.
    S, H, D = 4096, 32, 128
    q, k, v = (torch.randn(1, H, S, D, device="cuda", dtype=bf) for _ in range(3))
    flops = 4 * S * S / 2 * D * H
    for name, backend in (("fa2", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        try:
            with sdpa_kernel([backend]):
                t = ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
            peers[f"prefill4k_{name}_ms"] = t
            peers[f"prefill4k_{name}_TFLOPs"] = flops / t / 1e9
        except RuntimeError as e:
            print(f"peer {name} unavailable: {e}", file=sys.stderr)

    # 512 new tokens over a cached prefix: SDPA plus a separate RoPE pass over Q and the stored keys.
    cos_all, sin_all = rope_tables(16384 + 512, D)
    for prefix in (4096, 16384):
        n = 512
        kk = torch.randn(1, H, prefix + n, D, device="cuda", dtype=bf)
        vv = torch.randn_like(kk)
        qq = torch.randn(1, H, n, D, device="cuda", dtype=bf)
        ck, sk = cos_all[: prefix + n], sin_all[: prefix + n]
        cq, sq = cos_all[prefix : prefix + n], sin_all[prefix : prefix + n]
        from torch.nn.attention.bias import causal_lower_right

        mask = causal_lower_right(n, prefix + n)
        best = None
        for name, run in (
            ("lower_right", lambda: F.scaled_dot_product_attention(rope(qq, cq, sq), rope(kk, ck, sk), vv, attn_mask=mask)),
            ("flash_full", lambda: F.scaled_dot_product_attention(rope(qq, cq, sq), rope(kk, ck, sk), vv)),
        ):
            try:
                with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]):
                    t = ms(run)
                peers[f"prefix{prefix // 1024}k_new512_{name}_ms"] = t
                best = t if best is None else min(best, t)
            except RuntimeError as e:
                print(f"peer {name} unavailable: {e}", file=sys.stderr)
        peers[f"prefix{prefix // 1024}k_new512_peer_ms"] = best
        del kk, vv

    out = sys.argv[2] if len(sys.argv) > 2 else None
    if out:
        json.dump(peers, open(out, "w"), indent=2)

    rows = []
    def row(what, value, goal):
        rows.append((what, value, goal))
    if "prefill4k_fa2_TFLOPs" in peers:
        row("prefill 4K causal: ours / FA2 (TFLOP/s ratio)", ours["prefill4k_TFLOPs"] / peers["prefill4k_fa2_TFLOPs"], ">= 1.0")
    if "prefill4k_fa2_TFLOPs" in peers and "prefill4k_wide_TFLOPs" in ours:
        row("prefill 4K causal, 32 rows/warp: ours / FA2", ours["prefill4k_wide_TFLOPs"] / peers["prefill4k_fa2_TFLOPs"], ">= 1.1")
    if "prefill4k_cudnn_TFLOPs" in peers:
        row("prefill 4K causal: ours / cuDNN", ours["prefill4k_TFLOPs"] / peers["prefill4k_cudnn_TFLOPs"], "")
        if "prefill4k_wide_TFLOPs" in ours:
            row("prefill 4K causal, 32 rows/warp: ours / cuDNN", ours["prefill4k_wide_TFLOPs"] / peers["prefill4k_cudnn_TFLOPs"], ">= 0.8")
    for p in (4, 16):
        key = f"prefix{p}k_new512"
        if peers.get(f"{key}_peer_ms"):
            row(f"512 new over {p}K prefix, RoPE on keys: peer / ours", peers[f"{key}_peer_ms"] / ours[f"{key}_rope_ms"], ">= 1.2")
            if f"{key}_rope_wide_ms" in ours:
                row(f"  the same, 32 rows/warp: peer / ours", peers[f"{key}_peer_ms"] / ours[f"{key}_rope_wide_ms"], ">= 1.2")
    for tag in ("mha40", "gqa32x16", "gqa32x8", "gqa64x8"):
        row(f"decode 64x4K {tag}: bandwidth / d2d copy", ours[f"decode64x4k_{tag}_GBps"] / ours["d2d_copy_GBps"], ">= 0.85")
        for kernel in ("cudacore", "tensorcore", "splitkeys"):
            if f"decode64x4k_{tag}_{kernel}_GBps" in ours:
                row(f"  {kernel}", ours[f"decode64x4k_{tag}_{kernel}_GBps"] / ours["d2d_copy_GBps"], ">= 0.85")
    row("pre-load via device tier (pageable): plain memcpy / ours", ours["preload_ratio_vs_plain"], ">= 0.9")
    row("pre-load via device tier (pinned): plain memcpy / ours", ours["preload_ratio_vs_plain_pinned"], ">= 0.9")
    row("13B cache-hit prefill: layer-wise / max(load, compute)", ours["hit13b_ratio_vs_max"], "<= 1.15")
    if "hit13b_engine_ratio_vs_max" in ours:
        row("13B cache-hit TTFT via the engine: layer-wise / max(load, resident)", ours["hit13b_engine_ratio_vs_max"], "<= 1.15")
        row("13B cache-hit TTFT via the engine: whole load first / layer-wise",
            ours["hit13b_engine_whole_load_first_ms"] / ours["hit13b_engine_layerwise_ms"], "> 1")
    print(f"\n{'ratio':<58} {'value':>8}  goal")
    for what, value, goal in rows:
        print(f"{what:<58} {value:8.3f}  {goal}")
    print("\nours:", json.dumps(ours))
    print("peers:", json.dumps(peers))


if __name__ == "__main__":
    main()
