#!/usr/bin/env python3
"""PyTorch peer of bench/train's engine job: the same work as bpo's training graph on a Qwen2.5-0.5B-shaped
model (random weights of the same shapes), so the two can be timed side by side.

One sequence of PROMPT + COMPLETION tokens; LoRA rank 16 (alpha 16) on q/k/v/o/gate/up/down of every layer
(A random, B zero, base weights frozen); forward = the log-softmax over the full vocabulary of every
completion row and the sum of the target log-probs; forward+backward = the same with autograd and
.backward() of that sum, which fills the LoRA gradients only (as bpo's LogProbsAndGradient).

Prints one JSON object: CPU seconds (time.process_time, user + system of this process) and wall seconds
of a warm-up pass of each kind, then of each timed repetition.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def build(args, dtype):
    g = torch.Generator().manual_seed(args.seed)

    def w(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).to(dtype)

    d, ff, nh, nkv = args.embedding, args.ff, args.heads, args.heads_kv
    hd = d // nh
    layers = []
    for _ in range(args.layers):
        L = {
            "attn_norm": torch.ones(d, dtype=dtype), "ffn_norm": torch.ones(d, dtype=dtype),
            "q": w(nh * hd, d), "k": w(nkv * hd, d), "v": w(nkv * hd, d), "o": w(d, nh * hd),
            "qb": w(nh * hd), "kb": w(nkv * hd), "vb": w(nkv * hd),
            "gate": w(ff, d), "up": w(ff, d), "down": w(d, ff),
        }
        lora = {}
        for name in ("q", "k", "v", "o", "gate", "up", "down"):
            out_f, in_f = L[name].shape
            a = (torch.randn(args.rank, in_f, generator=g) / math.sqrt(in_f)).requires_grad_()
            b = torch.zeros(out_f, args.rank).requires_grad_()
            lora[name] = (a, b)
        L["lora"] = lora
        layers.append(L)
    emb = w(args.vocab, d)
    return emb, torch.ones(d, dtype=dtype), layers


def rms_norm(x, weight, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope(x, pos, base=1000000.0):
    # NeoX style (qwen2): rotate the two halves of each head.
    hd = x.shape[-1]
    inv = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = pos[:, None].float() * inv[None, :]
    cos, sin = torch.cos(ang)[:, None, :].to(x.dtype), torch.sin(ang)[:, None, :].to(x.dtype)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def forward(args, model, tokens, prompt):
    emb, out_norm, layers = model
    d, nh, nkv = args.embedding, args.heads, args.heads_kv
    hd, scale = d // nh, args.alpha / args.rank
    T = tokens.shape[0]
    pos = torch.arange(T)
    mask = torch.full((T, T), float("-inf")).triu(1)
    x = emb[tokens]

    def lin(L, name, x, bias=None):
        a, b = L["lora"][name]
        y = F.linear(x, L[name], bias)
        return y + scale * F.linear(F.linear(x, a.to(x.dtype)), b.to(x.dtype))

    for L in layers:
        h = rms_norm(x, L["attn_norm"])
        q = lin(L, "q", h, L["qb"]).view(T, nh, hd)
        k = lin(L, "k", h, L["kb"]).view(T, nkv, hd)
        v = lin(L, "v", h, L["vb"]).view(T, nkv, hd)
        q, k = rope(q, pos).transpose(0, 1), rope(k, pos).transpose(0, 1)
        v = v.transpose(0, 1)
        k = k.repeat_interleave(nh // nkv, dim=0)
        v = v.repeat_interleave(nh // nkv, dim=0)
        att = torch.softmax((q @ k.transpose(1, 2)) / math.sqrt(hd) + mask.to(q.dtype), dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, d)
        x = x + lin(L, "o", o)
        h = rms_norm(x, L["ffn_norm"])
        x = x + lin(L, "down", F.silu(lin(L, "gate", h)) * lin(L, "up", h))
    rows = rms_norm(x[prompt - 1:T - 1], out_norm)
    logits = F.linear(rows, emb).float()
    return torch.log_softmax(logits, dim=-1).gather(1, tokens[prompt:, None]).sum()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--embedding", type=int, default=896)
    ap.add_argument("--ff", type=int, default=4864)
    ap.add_argument("--heads", type=int, default=14)
    ap.add_argument("--heads-kv", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--completion", type=int, default=192)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dtype = torch.float32
    model = build(args, dtype)
    tokens = torch.randint(0, args.vocab, (args.prompt + args.completion,))

    def timed(fn):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        return time.process_time() - c0, time.perf_counter() - w0

    def ctx():
        if args.dtype == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def fwd():
        with torch.no_grad(), ctx():
            forward(args, model, tokens, args.prompt)

    def step():
        for L in model[2]:
            for a, b in L["lora"].values():
                a.grad = b.grad = None
        with ctx():
            s = forward(args, model, tokens, args.prompt)
        s.backward()

    res = {"torch": torch.__version__, "blas": torch.__config__.show().count("openblas") > 0,
           "threads": torch.get_num_threads(), "dtype": args.dtype}
    res["warmup_forward"], res["warmup_step"] = timed(fwd), timed(step)
    res["forward"], res["step"] = [], []
    for _ in range(args.reps):
        res["forward"].append(timed(fwd))
        res["step"].append(timed(step))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
