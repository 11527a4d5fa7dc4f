#!/usr/bin/env python3
"""PyTorch CPU baseline for BENCHMARKS.md: the same GPT-2 (llm.c / nanoGPT model) and batch as
`tptrain --model small --batch 8 --seq 256`, AdamW, N threads. Prints BENCH lines.

Usage: python3 scripts/bench_pytorch.py [--threads 2] [--steps 10] [--times FILE]
(--times appends every step's milliseconds to FILE, one per line, first two steps excluded)
"""
import argparse, math, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F

# PyTorch 2's fused causal attention; older releases (Debian 12's torch 1.13) run it explicitly
SDPA = hasattr(F, "scaled_dot_product_attention")


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.ln1 = nn.LayerNorm(C, eps=1e-5)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C, eps=1e-5)
        self.fc = nn.Linear(C, 4 * C)
        self.fcproj = nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        if SDPA:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # torch < 2.0 (Debian's 1.13): the explicit masked softmax
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
            att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
            y = F.softmax(att, dim=-1) @ v
        x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, C, H, V, T):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, H) for _ in range(L))
        self.lnf = nn.LayerNorm(C, eps=1e-5)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        logits = self.lnf(x) @ self.wte.weight.T  # tied LM head
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--data", default="data/shakespeare.txt")
    ap.add_argument("--times", help="append per-step milliseconds (after warm-up) to this file")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1337)
    L, C, H, V, T, B = 6, 384, 6, 256, 256, 8
    model = GPT(L, C, H, V, T)
    for name, p in model.named_parameters():  # GPT-2 initialisation, as tptrain
        if p.dim() == 2:
            std = 0.02 / math.sqrt(2 * L) if name.endswith(("proj.weight", "fcproj.weight")) else 0.02
            nn.init.normal_(p, std=std)
        elif "ln" not in name:
            nn.init.zeros_(p)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.0)
    data = torch.tensor(list(open(a.data, "rb").read()), dtype=torch.long)
    times = []
    for k in range(a.steps):
        s = k * B * T
        x = data[s:s + B * T].view(B, T)
        y = data[s + 1:s + B * T + 1].view(B, T)
        t0 = time.perf_counter()
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    dt = statistics.median(times[2:])
    if a.times:
        with open(a.times, "a") as f:
            f.writelines(f"{t * 1e3:.3f}\n" for t in times[2:])
    flops_tok = 6 * (12 * L * C * C + V * C) + 12 * L * C * T
    tok_s = B * T / dt
    print(f"# pytorch {torch.__version__}, attention: {'scaled_dot_product_attention' if SDPA else 'explicit masked softmax (no SDPA before torch 2.0)'}")
    print(f"BENCH pytorch_small_threads{a.threads}_tokens_per_s {tok_s:.1f} tok/s")
    print(f"BENCH pytorch_small_threads{a.threads}_step_ms {dt * 1e3:.1f} ms")
    print(f"BENCH pytorch_small_threads{a.threads}_step_ms_min {min(times[2:]) * 1e3:.1f} ms")
    print(f"BENCH pytorch_small_threads{a.threads}_gflops {flops_tok * tok_s / 1e9:.1f} GFLOP/s")
    print(f"# torch {torch.__version__}, final loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
