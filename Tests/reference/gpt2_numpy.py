#!/usr/bin/env python3
"""Independent float64 numpy reference of llm.c GPT-2 training (train_gpt2.c).

Forward, analytic backward, AdamW (llm.c flavour) and the llm.c checkpoint /
token file formats.  Only the Python standard library and numpy are used.

Usage (training):
  python3 gpt2_numpy.py --checkpoint F --data F --batch B --seq T --steps N
      [--lr 3e-4] [--beta1 0.9] [--beta2 0.999] [--eps 1e-8]
      [--weight-decay 0.0] [--grad-clip 0] [--dp 1]
      [--dump-grads FILE] [--dump-params FILE]
  Prints one JSON object per step: {"step", "loss", "grad_norm", "lr"}.

Other modes:
  python3 gpt2_numpy.py --make-checkpoint OUT --layers L --heads H --channels C
      --vocab V --padded-vocab Vp --max-seq T --seed S
  python3 gpt2_numpy.py --self-test

See README.md next to this file.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

CKPT_MAGIC = 20240326
CKPT_VERSION = 3
DATA_MAGIC = 20240520
DATA_VERSION = 1
HEADER_INTS = 256
LN_EPS = 1e-5
GELU_SCALE = math.sqrt(2.0 / math.pi)

PARAM_NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw",
               "attprojb", "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb",
               "lnfw", "lnfb"]


class ReferenceError_(Exception):
    """User-facing error (bad file, bad arguments)."""


def fail(msg):
    raise ReferenceError_(msg)


# ----------------------------------------------------------------------------
# config / parameter layout

class Config:
    def __init__(self, maxT, V, L, H, C, Vp):
        self.maxT, self.V, self.L, self.H, self.C, self.Vp = maxT, V, L, H, C, Vp

    def validate(self):
        for name in ("maxT", "V", "L", "H", "C", "Vp"):
            if getattr(self, name) <= 0:
                fail("invalid config: %s=%d must be positive" % (name, getattr(self, name)))
        if self.C % self.H != 0:
            fail("invalid config: channels C=%d not divisible by heads H=%d" % (self.C, self.H))
        if self.Vp < self.V:
            fail("invalid config: padded vocab Vp=%d < vocab V=%d" % (self.Vp, self.V))

    def __repr__(self):
        return "Config(maxT=%d, V=%d, L=%d, H=%d, C=%d, Vp=%d)" % (
            self.maxT, self.V, self.L, self.H, self.C, self.Vp)


def param_shapes(cfg):
    L, C, Vp, maxT = cfg.L, cfg.C, cfg.Vp, cfg.maxT
    return [
        ("wte", (Vp, C)), ("wpe", (maxT, C)),
        ("ln1w", (L, C)), ("ln1b", (L, C)),
        ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)),
        ("attprojw", (L, C, C)), ("attprojb", (L, C)),
        ("ln2w", (L, C)), ("ln2b", (L, C)),
        ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)),
        ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)),
        ("lnfw", (C,)), ("lnfb", (C,)),
    ]


def num_params(cfg):
    return sum(int(np.prod(s)) for _, s in param_shapes(cfg))


def views(cfg, flat):
    """Dict of named views into a flat array (checkpoint order)."""
    out = {}
    off = 0
    for name, shape in param_shapes(cfg):
        n = int(np.prod(shape))
        out[name] = flat[off:off + n].reshape(shape)
        off += n
    assert off == flat.size
    return out


# ----------------------------------------------------------------------------
# file formats

def load_checkpoint(path):
    try:
        size = os.path.getsize(path)
    except OSError as e:
        fail("cannot open checkpoint %s: %s" % (path, e))
    if size < HEADER_INTS * 4:
        fail("checkpoint %s too small (%d bytes) for the 1024-byte header" % (path, size))
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(HEADER_INTS * 4), dtype="<i4")
        if header[0] != CKPT_MAGIC:
            fail("bad checkpoint magic in %s: got %d, expected %d" % (path, header[0], CKPT_MAGIC))
        if header[1] != CKPT_VERSION:
            fail("bad checkpoint version in %s: got %d, expected %d" % (path, header[1], CKPT_VERSION))
        cfg = Config(*(int(x) for x in header[2:8]))
        cfg.validate()
        n = num_params(cfg)
        expected = HEADER_INTS * 4 + 4 * n
        if size != expected:
            fail("checkpoint size mismatch in %s: %d bytes, expected %d for %r (%d params)"
                 % (path, size, expected, cfg, n))
        data = np.frombuffer(f.read(4 * n), dtype="<f4")
    return cfg, data.astype(np.float64)


def write_checkpoint(path, cfg, flat):
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:8] = [CKPT_MAGIC, CKPT_VERSION, cfg.maxT, cfg.V, cfg.L, cfg.H, cfg.C, cfg.Vp]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(flat, dtype="<f4").tobytes())


def load_tokens(path):
    """llm.c token file (magic 20240520) or raw bytes (vocab 256)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) >= 4 and int(np.frombuffer(raw[:4], dtype="<i4")[0]) == DATA_MAGIC:
        if len(raw) < HEADER_INTS * 4:
            fail("token file %s has a truncated header" % path)
        header = np.frombuffer(raw[:HEADER_INTS * 4], dtype="<i4")
        if header[1] != DATA_VERSION:
            fail("bad token file version in %s: got %d, expected %d" % (path, header[1], DATA_VERSION))
        ntok = int(header[2])
        body = raw[HEADER_INTS * 4:]
        if len(body) < 2 * ntok:
            fail("token file %s truncated: header says %d tokens, file holds %d"
                 % (path, ntok, len(body) // 2))
        return np.frombuffer(body[:2 * ntok], dtype="<u2").astype(np.int64), "llmc"
    return np.frombuffer(raw, dtype=np.uint8).astype(np.int64), "bytes"


def make_random_checkpoint(cfg, seed):
    """Normal(0, 0.02) weights, zero biases, LN weights 1, padded wte rows 0."""
    rng = np.random.default_rng(seed)
    flat = np.zeros(num_params(cfg), dtype=np.float64)
    P = views(cfg, flat)
    P["wte"][:cfg.V] = rng.normal(0.0, 0.02, size=(cfg.V, cfg.C))
    for name in ("wpe", "qkvw", "attprojw", "fcw", "fcprojw"):
        P[name][...] = rng.normal(0.0, 0.02, size=P[name].shape)
    for name in ("ln1w", "ln2w", "lnfw"):
        P[name][...] = 1.0
    return flat


# ----------------------------------------------------------------------------
# layers

def layernorm_fwd(x, w, b):
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)  # biased variance
    rstd = 1.0 / np.sqrt(var + LN_EPS)
    xhat = xc * rstd
    return xhat * w + b, (xhat, rstd)


def layernorm_bwd(dout, w, cache):
    """Returns dx, dw, db."""
    xhat, rstd = cache
    C = xhat.shape[-1]
    dw = (dout * xhat).reshape(-1, C).sum(axis=0)
    db = dout.reshape(-1, C).sum(axis=0)
    dxhat = dout * w
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, dw, db


def gelu_fwd(x):
    """Returns gelu(x) and the tanh term (reused by gelu_grad)."""
    t = np.tanh(GELU_SCALE * (x + 0.044715 * (x * x * x)))
    return 0.5 * x * (1.0 + t), t


def gelu_grad(x, t):
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_SCALE * (1.0 + 3.0 * 0.044715 * x * x)


def linear(x, w, b):
    """y = x @ w.T + b for x (..., in), w (out, in)."""
    shp = x.shape
    y = x.reshape(-1, shp[-1]) @ w.T + b
    return y.reshape(shp[:-1] + (w.shape[0],))


def linear_bwd(dy, x, w):
    """Returns dx, dw, db for y = x @ w.T + b."""
    dy2 = dy.reshape(-1, dy.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    dw = dy2.T @ x2
    db = dy2.sum(axis=0)
    dx = (dy2 @ w).reshape(x.shape)
    return dx, dw, db


# ----------------------------------------------------------------------------
# model

def forward(cfg, P, inputs, targets, keep=True):
    """Returns (mean loss, per-position losses (B,T), cache or None)."""
    B, T = inputs.shape
    C, H, L, V = cfg.C, cfg.H, cfg.L, cfg.V
    hs = C // H
    scale = 1.0 / math.sqrt(hs)
    if T > cfg.maxT:
        fail("sequence length %d exceeds checkpoint maxT %d" % (T, cfg.maxT))
    mask = np.tril(np.ones((T, T), dtype=bool))

    x = P["wte"][inputs] + P["wpe"][:T][None, :, :]
    layers = []
    for l in range(L):
        ln1, ln1c = layernorm_fwd(x, P["ln1w"][l], P["ln1b"][l])
        qkv = linear(ln1, P["qkvw"][l], P["qkvb"][l])
        q, k, v = (qkv[..., i * C:(i + 1) * C].reshape(B, T, H, hs).transpose(0, 2, 1, 3)
                   for i in range(3))
        s = np.matmul(q, k.transpose(0, 1, 3, 2)) * scale  # (B,H,T,T)
        s = np.where(mask, s, -np.inf)
        s = s - s.max(axis=-1, keepdims=True)
        a = np.exp(s)
        a /= a.sum(axis=-1, keepdims=True)
        y = np.matmul(a, v).transpose(0, 2, 1, 3).reshape(B, T, C)
        attp = linear(y, P["attprojw"][l], P["attprojb"][l])
        x2 = x + attp
        ln2, ln2c = layernorm_fwd(x2, P["ln2w"][l], P["ln2b"][l])
        h = linear(ln2, P["fcw"][l], P["fcb"][l])
        g, gt = gelu_fwd(h)
        m = linear(g, P["fcprojw"][l], P["fcprojb"][l])
        x3 = x2 + m
        if keep:
            layers.append((ln1, ln1c, q, k, v, a, y, ln2, ln2c, h, g, gt))
        x = x3
    lnf, lnfc = layernorm_fwd(x, P["lnfw"], P["lnfb"])
    logits = lnf.reshape(-1, C) @ P["wte"][:V].T  # padded rows never used
    logits = logits - logits.max(axis=-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    tflat = targets.reshape(-1)
    losses = -logp[np.arange(B * T), tflat]
    loss = losses.mean()
    cache = None
    if keep:
        cache = dict(inputs=inputs, targets=targets, layers=layers,
                     lnf=lnf, lnfc=lnfc, logp=logp)
    return loss, losses.reshape(B, T), cache


def backward(cfg, P, cache):
    """Gradient of the mean loss, as a flat float64 array in checkpoint order."""
    inputs, targets = cache["inputs"], cache["targets"]
    B, T = inputs.shape
    C, H, L, V = cfg.C, cfg.H, cfg.L, cfg.V
    hs = C // H
    scale = 1.0 / math.sqrt(hs)
    gflat = np.zeros(num_params(cfg), dtype=np.float64)
    G = views(cfg, gflat)

    # cross-entropy + classifier (tied to wte rows 0..V-1)
    dlogits = np.exp(cache["logp"])
    dlogits[np.arange(B * T), targets.reshape(-1)] -= 1.0
    dlogits /= (B * T)
    lnf2 = cache["lnf"].reshape(-1, C)
    G["wte"][:V] += dlogits.T @ lnf2
    dlnf = (dlogits @ P["wte"][:V]).reshape(B, T, C)
    dx, G["lnfw"][...], G["lnfb"][...] = layernorm_bwd(dlnf, P["lnfw"], cache["lnfc"])

    for l in reversed(range(L)):
        ln1, ln1c, q, k, v, a, y, ln2, ln2c, h, g, gt = cache["layers"][l]
        # x3 = x2 + fcproj(gelu(fc(ln2(x2))))
        dg, G["fcprojw"][l], G["fcprojb"][l] = linear_bwd(dx, g, P["fcprojw"][l])
        dh = dg * gelu_grad(h, gt)
        dln2, G["fcw"][l], G["fcb"][l] = linear_bwd(dh, ln2, P["fcw"][l])
        dx2_ln, G["ln2w"][l], G["ln2b"][l] = layernorm_bwd(dln2, P["ln2w"][l], ln2c)
        dx2 = dx + dx2_ln
        # x2 = x + attproj(attn(ln1(x)))
        dy, G["attprojw"][l], G["attprojb"][l] = linear_bwd(dx2, y, P["attprojw"][l])
        dy = dy.reshape(B, T, H, hs).transpose(0, 2, 1, 3)  # (B,H,T,hs)
        da = np.matmul(dy, v.transpose(0, 1, 3, 2))
        dv = np.matmul(a.transpose(0, 1, 3, 2), dy)
        ds = a * (da - (da * a).sum(axis=-1, keepdims=True))  # masked entries: a == 0
        dq = np.matmul(ds, k) * scale
        dk = np.matmul(ds.transpose(0, 1, 3, 2), q) * scale
        dqkv = np.concatenate([t.transpose(0, 2, 1, 3).reshape(B, T, C) for t in (dq, dk, dv)],
                              axis=-1)
        dln1, G["qkvw"][l], G["qkvb"][l] = linear_bwd(dqkv, ln1, P["qkvw"][l])
        dx_ln, G["ln1w"][l], G["ln1b"][l] = layernorm_bwd(dln1, P["ln1w"][l], ln1c)
        dx = dx2 + dx_ln

    # embeddings
    np.add.at(G["wte"], inputs.reshape(-1), dx.reshape(-1, C))
    G["wpe"][:T] += dx.sum(axis=0)
    return gflat


def loss_and_grad(cfg, flat, inputs, targets):
    P = views(cfg, flat)
    loss, _, cache = forward(cfg, P, inputs, targets, keep=True)
    return loss, backward(cfg, P, cache)


# ----------------------------------------------------------------------------
# optimizer

class AdamW:
    def __init__(self, n, lr, beta1, beta2, eps, weight_decay):
        self.lr, self.b1, self.b2, self.eps, self.wd = lr, beta1, beta2, eps, weight_decay
        self.m = np.zeros(n, dtype=np.float64)
        self.v = np.zeros(n, dtype=np.float64)
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        b1, b2 = self.b1, self.b2
        self.m = b1 * self.m + (1.0 - b1) * grads
        self.v = b2 * self.v + (1.0 - b2) * grads * grads
        mhat = self.m / (1.0 - b1 ** self.t)
        vhat = self.v / (1.0 - b2 ** self.t)
        params -= self.lr * (mhat / (np.sqrt(vhat) + self.eps) + self.wd * params)


def clip_grads(grads, clip):
    """Returns the pre-clip global L2 norm; scales grads in place if norm > clip > 0."""
    norm = float(np.sqrt(np.dot(grads, grads)))
    if clip > 0 and norm > clip:
        grads *= clip / norm
    return norm


# ----------------------------------------------------------------------------
# batching

def num_windows(ntok, B, T, dp):
    return (ntok - 1) // (dp * B * T)


def get_batch(tokens, step, B, T, dp):
    """Window step mod W; dp replicas stacked as one (dp*B, T) batch."""
    W = num_windows(len(tokens), B, T, dp)
    if W <= 0:
        fail("batch larger than data: %d tokens, need at least %d (dp*B*T+1)"
             % (len(tokens), dp * B * T + 1))
    w = step % W
    n = dp * B * T
    off = w * n
    inputs = tokens[off:off + n].reshape(dp * B, T)
    targets = tokens[off + 1:off + 1 + n].reshape(dp * B, T)
    return inputs, targets


# ----------------------------------------------------------------------------
# training

def train(args):
    cfg, params = load_checkpoint(args.checkpoint)
    tokens, kind = load_tokens(args.data)
    if kind == "bytes" and cfg.V < 256 and len(tokens) and tokens.max() >= cfg.V:
        fail("raw-byte data (vocab 256) has token %d >= model vocab V=%d" % (tokens.max(), cfg.V))
    if len(tokens) and tokens.max() >= cfg.V:
        fail("data has token id %d >= model vocab V=%d" % (tokens.max(), cfg.V))
    if args.batch <= 0 or args.seq <= 0 or args.dp <= 0 or args.steps < 0:
        fail("--batch, --seq, --dp must be positive and --steps non-negative")
    if args.seq > cfg.maxT:
        fail("--seq %d exceeds checkpoint maxT %d" % (args.seq, cfg.maxT))
    if num_windows(len(tokens), args.batch, args.seq, args.dp) <= 0:
        fail("batch larger than data: %d tokens, need at least %d (dp*B*T+1)"
             % (len(tokens), args.dp * args.batch * args.seq + 1))

    opt = AdamW(params.size, args.lr, args.beta1, args.beta2, args.eps, args.weight_decay)
    for step in range(args.steps):
        inputs, targets = get_batch(tokens, step, args.batch, args.seq, args.dp)
        loss, grads = loss_and_grad(cfg, params, inputs, targets)
        if step == 0 and args.dump_grads:
            grads.astype("<f4").tofile(args.dump_grads)  # raw, pre-clip
        norm = clip_grads(grads, args.grad_clip)
        opt.step(params, grads)
        print(json.dumps({"step": step + 1, "loss": float(loss), "grad_norm": norm,
                          "lr": float(args.lr)}), flush=True)
    if args.dump_params:
        params.astype("<f4").tofile(args.dump_params)


# ----------------------------------------------------------------------------
# self-test

def naive_forward_losses(cfg, P, inputs, targets):
    """Loop-based forward mirroring llm.c's C loops (independent of forward())."""
    B, T = inputs.shape
    C, H, L, V = cfg.C, cfg.H, cfg.L, cfg.V
    hs = C // H

    def ln(vec, w, b):
        m = sum(vec) / C
        var = sum((e - m) ** 2 for e in vec) / C
        r = 1.0 / math.sqrt(var + LN_EPS)
        return [(vec[i] - m) * r * w[i] + b[i] for i in range(C)]

    def mm(vec, W, bias):
        return [sum(W[o][i] * vec[i] for i in range(len(vec))) + bias[o] for o in range(len(W))]

    out = np.zeros((B, T))
    for b in range(B):
        xs = [[P["wte"][inputs[b, t]][c] + P["wpe"][t][c] for c in range(C)] for t in range(T)]
        for l in range(L):
            qkv = [mm(ln(xs[t], P["ln1w"][l], P["ln1b"][l]), P["qkvw"][l], P["qkvb"][l])
                   for t in range(T)]
            ys = [[0.0] * C for _ in range(T)]
            for t in range(T):
                for h in range(H):
                    q = qkv[t][h * hs:(h + 1) * hs]
                    sc = []
                    for t2 in range(t + 1):
                        kk = qkv[t2][C + h * hs:C + (h + 1) * hs]
                        sc.append(sum(q[i] * kk[i] for i in range(hs)) / math.sqrt(hs))
                    mx = max(sc)
                    e = [math.exp(s - mx) for s in sc]
                    z = sum(e)
                    for t2 in range(t + 1):
                        vv = qkv[t2][2 * C + h * hs:2 * C + (h + 1) * hs]
                        for i in range(hs):
                            ys[t][h * hs + i] += e[t2] / z * vv[i]
            for t in range(T):
                ap = mm(ys[t], P["attprojw"][l], P["attprojb"][l])
                x2 = [xs[t][c] + ap[c] for c in range(C)]
                hh = mm(ln(x2, P["ln2w"][l], P["ln2b"][l]), P["fcw"][l], P["fcb"][l])
                gg = [0.5 * u * (1 + math.tanh(GELU_SCALE * (u + 0.044715 * u * u * u))) for u in hh]
                mp = mm(gg, P["fcprojw"][l], P["fcprojb"][l])
                xs[t] = [x2[c] + mp[c] for c in range(C)]
        for t in range(T):
            f = ln(xs[t], P["lnfw"], P["lnfb"])
            logits = [sum(P["wte"][vi][c] * f[c] for c in range(C)) for vi in range(V)]
            mx = max(logits)
            lse = mx + math.log(sum(math.exp(z - mx) for z in logits))
            out[b, t] = lse - logits[targets[b, t]]
    return out


def self_test():
    import tempfile
    rng = np.random.default_rng(1234)
    cfg = Config(maxT=8, V=11, L=2, H=2, C=8, Vp=16)
    B, T = 2, 5
    n = num_params(cfg)
    # random model with non-trivial biases / LN params so every path is exercised
    flat = rng.normal(0.0, 0.3, size=n)
    P = views(cfg, flat)
    P["wte"][cfg.V:] = 0.0
    for name in ("ln1w", "ln2w", "lnfw"):
        P[name][...] = 1.0 + 0.3 * rng.normal(size=P[name].shape)
    inputs = rng.integers(0, cfg.V, size=(B, T))
    targets = rng.integers(0, cfg.V, size=(B, T))
    ok = True

    def report(name, passed, detail=""):
        nonlocal ok
        ok &= bool(passed)
        print("[%s] %s %s" % ("PASS" if passed else "FAIL", name, detail), flush=True)

    # 1. vectorized forward vs loop forward
    loss, losses, _ = forward(cfg, P, inputs, targets, keep=False)
    naive = naive_forward_losses(cfg, P, inputs, targets)
    err = np.abs(losses - naive).max()
    report("forward matches loop implementation", err < 1e-12, "max abs err %.3e" % err)

    # 2. causality: changing a later token leaves earlier positions unchanged
    inp2 = inputs.copy()
    inp2[:, 3] = (inp2[:, 3] + 1) % cfg.V
    _, losses2, _ = forward(cfg, P, inp2, targets, keep=False)
    report("causal mask", np.array_equal(losses[:, :3], losses2[:, :3])
           and not np.allclose(losses[:, 3:], losses2[:, 3:]))

    # 3. analytic gradient vs central finite differences, every parameter
    loss, grad = loss_and_grad(cfg, flat, inputs, targets)
    h = 1e-5
    fd = np.zeros(n)
    for i in range(n):
        old = flat[i]
        flat[i] = old + h
        lp = forward(cfg, P, inputs, targets, keep=False)[0]
        flat[i] = old - h
        lm = forward(cfg, P, inputs, targets, keep=False)[0]
        flat[i] = old
        fd[i] = (lp - lm) / (2 * h)
    G, FD = views(cfg, grad), views(cfg, fd)
    for name in PARAM_NAMES:
        a, f = G[name], FD[name]
        abs_err = np.abs(a - f).max()
        rel = abs_err / max(np.abs(f).max(), 1e-12)
        report("grad %-9s" % name, abs_err < 1e-8 and rel < 1e-6,
               "max|g|=%.3e max abs err %.3e rel %.3e" % (np.abs(f).max(), abs_err, rel))
    report("padded wte rows have zero grad", np.all(G["wte"][cfg.V:] == 0.0))

    # 4. dp batching: stacked batch == mean of per-replica losses/grads
    tokens = rng.integers(0, cfg.V, size=200)
    dp = 2
    inp, tgt = get_batch(tokens, 3, B, T, dp)
    loss_all, grad_all = loss_and_grad(cfg, flat, inp, tgt)
    W = num_windows(len(tokens), B, T, dp)
    off = (3 % W) * dp * B * T
    parts = []
    for j in range(dp):
        s = off + j * B * T
        parts.append(loss_and_grad(cfg, flat, tokens[s:s + B * T].reshape(B, T),
                                   tokens[s + 1:s + 1 + B * T].reshape(B, T)))
    lerr = abs(loss_all - np.mean([p[0] for p in parts]))
    gerr = np.abs(grad_all - np.mean([p[1] for p in parts], axis=0)).max()
    report("dp=2 equals mean of replicas", lerr < 1e-13 and gerr < 1e-13,
           "loss err %.1e grad err %.1e" % (lerr, gerr))
    report("window wrap-around", W == 199 // 20 and np.array_equal(
        get_batch(tokens, W + 1, B, T, dp)[0], get_batch(tokens, 1, B, T, dp)[0]))

    # 5. AdamW vs scalar formula, clipping
    p0 = rng.normal(size=7)
    gs = [rng.normal(size=7) for _ in range(3)]
    opt = AdamW(7, 1e-2, 0.9, 0.999, 1e-8, 0.1)
    pv = p0.copy()
    for g in gs:
        opt.step(pv, g.copy())
    ps = list(p0)
    m = [0.0] * 7
    v = [0.0] * 7
    for t, g in enumerate(gs, 1):
        for i in range(7):
            m[i] = 0.9 * m[i] + 0.1 * g[i]
            v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
            mh = m[i] / (1 - 0.9 ** t)
            vh = v[i] / (1 - 0.999 ** t)
            ps[i] -= 1e-2 * (mh / (math.sqrt(vh) + 1e-8) + 0.1 * ps[i])
    report("AdamW matches scalar formula", np.abs(pv - np.array(ps)).max() < 1e-15)
    g = np.array([3.0, 4.0])
    nrm = clip_grads(g, 1.0)
    g2 = np.array([3.0, 4.0])
    nrm2 = clip_grads(g2, 10.0)
    report("grad clipping", nrm == 5.0 and np.allclose(g, [0.6, 0.8]) and nrm2 == 5.0
           and np.array_equal(g2, [3.0, 4.0]))

    # 6. file formats
    with tempfile.TemporaryDirectory() as d:
        ck = os.path.join(d, "m.bin")
        c2 = Config(maxT=16, V=13, L=2, H=2, C=8, Vp=16)
        rp = make_random_checkpoint(c2, 7)
        write_checkpoint(ck, c2, rp)
        c3, lp = load_checkpoint(ck)
        R = views(c3, lp)
        report("checkpoint round trip",
               vars(c3) == vars(c2) and np.array_equal(lp, rp.astype(np.float32).astype(np.float64))
               and np.all(R["wte"][13:] == 0) and np.all(R["ln1w"] == 1) and np.all(R["qkvb"] == 0))
        with open(ck, "r+b") as f:
            f.write(np.int32(123).tobytes())
        try:
            load_checkpoint(ck)
            report("bad magic rejected", False)
        except ReferenceError_ as e:
            report("bad magic rejected", "magic" in str(e))
        write_checkpoint(ck, c2, rp[:-1])
        try:
            load_checkpoint(ck)
            report("bad size rejected", False)
        except ReferenceError_ as e:
            report("bad size rejected", "size" in str(e))
        tf = os.path.join(d, "t.bin")
        hdr = np.zeros(HEADER_INTS, dtype="<i4")
        hdr[:3] = [DATA_MAGIC, DATA_VERSION, 5]
        with open(tf, "wb") as f:
            f.write(hdr.tobytes() + np.array([1, 2, 300, 4, 50000], dtype="<u2").tobytes())
        tk, kind = load_tokens(tf)
        with open(tf, "wb") as f:
            f.write(b"abc")
        tk2, kind2 = load_tokens(tf)
        report("token files", kind == "llmc" and list(tk) == [1, 2, 300, 4, 50000]
               and kind2 == "bytes" and list(tk2) == [97, 98, 99])
        try:
            get_batch(tk2, 0, 1, 3, 1)
            report("batch larger than data rejected", False)
        except ReferenceError_ as e:
            report("batch larger than data rejected", "batch larger than data" in str(e))

    print("SELF-TEST %s" % ("PASSED" if ok else "FAILED"), flush=True)
    return 0 if ok else 1


# ----------------------------------------------------------------------------
# CLI

def main(argv=None):
    ap = argparse.ArgumentParser(description="float64 numpy reference of llm.c GPT-2 training")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--checkpoint")
    ap.add_argument("--data")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--seq", type=int)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.999)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--grad-clip", type=float, default=0.0)
    ap.add_argument("--dp", type=int, default=1)
    ap.add_argument("--dump-grads")
    ap.add_argument("--dump-params")
    ap.add_argument("--make-checkpoint", metavar="OUT")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--channels", type=int)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--padded-vocab", type=int)
    ap.add_argument("--max-seq", type=int)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    try:
        if args.self_test:
            return self_test()
        if args.make_checkpoint:
            need = ["layers", "heads", "channels", "vocab", "max_seq"]
            missing = ["--" + k.replace("_", "-") for k in need if getattr(args, k) is None]
            if missing:
                ap.error("--make-checkpoint requires " + " ".join(missing))
            Vp = args.padded_vocab if args.padded_vocab is not None else args.vocab
            cfg = Config(maxT=args.max_seq, V=args.vocab, L=args.layers, H=args.heads,
                         C=args.channels, Vp=Vp)
            cfg.validate()
            write_checkpoint(args.make_checkpoint, cfg, make_random_checkpoint(cfg, args.seed))
            return 0
        missing = [o for o, k in (("--checkpoint", "checkpoint"), ("--data", "data"),
                                  ("--batch", "batch"), ("--seq", "seq"), ("--steps", "steps"))
                   if getattr(args, k) is None]
        if missing:
            ap.error("training requires " + " ".join(missing))
        train(args)
        return 0
    except ReferenceError_ as e:
        print("error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
