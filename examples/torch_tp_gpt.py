#!/usr/bin/env python3
"""A GPT trained with Megatron-style tensor parallelism in PyTorch on CPUs, watched and steered
by tptop through the telemetry segment (python/tptop_telemetry).

    tptop launch --runner torchrun --np 2 -- examples/torch_tp_gpt.py --tp 2 --steps 500
    torchrun --standalone --nproc-per-node 2 examples/torch_tp_gpt.py --tp 2 --job run1

The world of t × d ranks (gloo) is a grid: TP groups of t consecutive ranks, DP groups of the
ranks with the same TP index. In a TP group every rank holds 1/t of each block: the QKV and fc
layers are column-parallel (heads split across ranks), attproj and fcproj row-parallel, with
Megatron's f (identity forward, all-reduce backward) and g (all-reduce forward, identity
backward) around them; the token embedding is vocab-parallel and tied to the LM head. DP
replicas average their gradients. The corpus is data/shakespeare.txt, one byte per token.

Every step each rank publishes a step record (loss, timings, all-reduce latencies, memory);
every --shard-stats-every steps the norms of its shards, which the job description lays out
in llm.c order, so the dashboard's Shards view shows them. At every step boundary the ranks
apply tptop's pause / resume / checkpoint / stop together (rank 0 reads, then broadcasts).
"""

import argparse
import math
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from tptop_telemetry import AllReduceStats, Job, TelemetryError, gpt2_shards, report_and_exit  # noqa: E402
from tptop_telemetry.torch_helpers import broadcast_control, memory_fields, timed_all_reduce  # noqa: E402

# ---------------------------------------------------------------------------------------------
# mappings: f and g, the conjugate pair around a tensor-parallel region


class Comm:
    """The process groups of this rank and the all-reduce statistics of the current step."""
    tp_group = None
    dp_group = None
    tp = 1
    tp_rank = 0
    stats = AllReduceStats()
    comm_ns = 0

    @classmethod
    def all_reduce(cls, x, group):
        t0 = time.perf_counter_ns()
        timed_all_reduce(x, cls.stats, group=group)
        cls.comm_ns += time.perf_counter_ns() - t0
        return x


class CopyToTP(torch.autograd.Function):
    """f: identity forward; all-reduce of the input gradient over the TP group backward."""

    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, grad):
        if Comm.tp == 1:
            return grad
        return Comm.all_reduce(grad.contiguous().clone(), Comm.tp_group)


class ReduceFromTP(torch.autograd.Function):
    """g: all-reduce of the partial outputs over the TP group forward; identity backward."""

    @staticmethod
    def forward(ctx, x):
        if Comm.tp == 1:
            return x
        return Comm.all_reduce(x.contiguous().clone(), Comm.tp_group)

    @staticmethod
    def backward(ctx, grad):
        return grad


class GatherFromTP(torch.autograd.Function):
    """All-gather of the last dimension over the TP group forward; this rank's slice backward."""

    @staticmethod
    def forward(ctx, x):
        if Comm.tp == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(Comm.tp)]
        t0 = time.perf_counter_ns()
        dist.all_gather(parts, x.contiguous(), group=Comm.tp_group)
        Comm.comm_ns += time.perf_counter_ns() - t0
        return torch.cat(parts, dim=-1)

    @staticmethod
    def backward(ctx, grad):
        if Comm.tp == 1:
            return grad
        n = grad.shape[-1] // Comm.tp
        return grad[..., Comm.tp_rank * n:(Comm.tp_rank + 1) * n].contiguous()


# ---------------------------------------------------------------------------------------------
# layers


def tag(p, name):
    """Marks a parameter with its llm.c tensor name (the shard layout's entry)."""
    p.llmc_name = name
    return p


class ColumnParallelLinear(nn.Module):
    """Y = f(X) A_r + b_r: this rank's ``out_local`` output features (rows of A)."""

    def __init__(self, c_in, out_local, wname, bname):
        super().__init__()
        self.weight = tag(nn.Parameter(torch.randn(out_local, c_in) * 0.02), wname)
        self.bias = tag(nn.Parameter(torch.zeros(out_local)), bname)

    def forward(self, x):  # (B, T, C) -> (B, T, out_local)
        return F.linear(CopyToTP.apply(x), self.weight, self.bias)


class RowParallelLinear(nn.Module):
    """Y = g(X_r A_r) + b: this rank's ``in_local`` input features (columns of A); the bias is
    replicated and added after the reduction."""

    def __init__(self, in_local, c_out, wname, bname):
        super().__init__()
        self.weight = tag(nn.Parameter(torch.randn(c_out, in_local) * 0.02), wname)
        self.bias = tag(nn.Parameter(torch.zeros(c_out)), bname)

    def forward(self, x):  # (B, T, in_local) -> (B, T, C)
        return ReduceFromTP.apply(F.linear(x, self.weight)) + self.bias


def layer_norm(c, wname, bname):
    ln = nn.LayerNorm(c)
    tag(ln.weight, wname)
    tag(ln.bias, bname)
    return ln


class Attention(nn.Module):
    """Causal self-attention over this rank's H/t heads."""

    def __init__(self, c, heads, tp):
        super().__init__()
        self.hl, self.hs = heads // tp, c // heads
        self.qkv = ColumnParallelLinear(c, 3 * c // tp, "qkvw", "qkvb")  # rows: local Q, K, V
        self.proj = RowParallelLinear(c // tp, c, "attprojw", "attprojb")

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split(self.hl * self.hs, dim=-1)  # (B, T, C/t) each
        q, k, v = (z.view(B, T, self.hl, self.hs).transpose(1, 2) for z in (q, k, v))  # (B, hl, T, hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.hs)  # (B, hl, T, T)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        y = att.masked_fill(mask, float("-inf")).softmax(-1) @ v  # (B, hl, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, self.hl * self.hs))


class MLP(nn.Module):
    def __init__(self, c, tp):
        super().__init__()
        self.fc = ColumnParallelLinear(c, 4 * c // tp, "fcw", "fcb")
        self.proj = RowParallelLinear(4 * c // tp, c, "fcprojw", "fcprojb")

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, c, heads, tp):
        super().__init__()
        self.ln1 = layer_norm(c, "ln1w", "ln1b")
        self.attn = Attention(c, heads, tp)
        self.ln2 = layer_norm(c, "ln2w", "ln2b")
        self.mlp = MLP(c, tp)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class VocabParallelEmbedding(nn.Module):
    """Rows [r·Vp/t, (r+1)·Vp/t) of the token table: tokens outside them look up zeros, and g
    sums the ranks' partial embeddings."""

    def __init__(self, padded_vocab, c, tp, tp_rank):
        super().__init__()
        self.rows = padded_vocab // tp
        self.start = tp_rank * self.rows
        self.weight = tag(nn.Parameter(torch.randn(self.rows, c) * 0.02), "wte")

    def forward(self, idx):  # (B, T) -> (B, T, C)
        local = idx - self.start
        outside = (local < 0) | (local >= self.rows)
        e = F.embedding(local.masked_fill(outside, 0), self.weight).masked_fill(outside.unsqueeze(-1), 0)
        return ReduceFromTP.apply(e)


class GPT(nn.Module):
    def __init__(self, layers, c, heads, padded_vocab, max_seq, tp, tp_rank):
        super().__init__()
        self.wte = VocabParallelEmbedding(padded_vocab, c, tp, tp_rank)
        self.wpe = tag(nn.Parameter(torch.randn(max_seq, c) * 0.01), "wpe")
        self.blocks = nn.ModuleList(Block(c, heads, tp) for _ in range(layers))
        self.lnf = layer_norm(c, "lnfw", "lnfb")

    def forward(self, idx, targets):  # (B, T), (B, T) -> loss
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe[:T]
        for b in self.blocks:
            x = b(x)
        # LM head tied to the vocab-parallel table: column-parallel over the vocabulary, then
        # the logits gathered (they are small here) for an ordinary cross-entropy
        logits = GatherFromTP.apply(F.linear(CopyToTP.apply(self.lnf(x)), self.wte.weight))  # (B, T, Vp)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


LLMC_ORDER = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb", "ln2w", "ln2b",
              "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]


def shard_norms(model, before):
    """Per llm.c tensor (all layers of this rank's shard): ‖θ‖, ‖g‖, ‖Δθ‖/‖θ‖ (``before``: the
    parameters before the update)."""
    sums = {n: [0.0, 0.0, 0.0] for n in LLMC_ORDER}
    for p, p0 in zip(model.parameters(), before):
        s = sums[p.llmc_name]
        s[0] += float(p.detach().pow(2).sum())
        s[1] += float(p.grad.pow(2).sum()) if p.grad is not None else 0.0
        s[2] += float((p.detach() - p0).pow(2).sum())
    return [(math.sqrt(w), math.sqrt(g), math.sqrt(d) / math.sqrt(w) if w > 0 else 0.0)
            for w, g, d in (sums[n] for n in LLMC_ORDER)]


# ---------------------------------------------------------------------------------------------
# training


def parse_args():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description="Megatron-style tensor-parallel GPT on CPUs, watched by tptop.")
    env = os.environ
    p.add_argument("--tp", type=int, default=int(env.get("TPTOP_TP", 0)),
                   help="tensor-parallel size t (default: $TPTOP_TP, else the world size / --dp)")
    p.add_argument("--dp", type=int, default=int(env.get("TPTOP_DP", 0)),
                   help="data-parallel size d (default: $TPTOP_DP, else the world size / t)")
    p.add_argument("--job", default=os.environ.get("TPTOP_JOB"), help="telemetry job name (default: $TPTOP_JOB)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--data", default=os.path.join(here, "..", "data", "shakespeare.txt"))
    p.add_argument("--checkpoint-dir", default="checkpoints")
    p.add_argument("--shard-stats-every", type=int, default=10)
    p.add_argument("--step-ms", type=float, default=0, help="sleep so a step takes at least this long")
    p.add_argument("--seed", type=int, default=1337)
    return p.parse_args()


def fail(msg):
    print(f"torch_tp_gpt: {msg}", file=sys.stderr)
    sys.exit(2)


def main():
    a = parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    tp = a.tp or (world // a.dp if a.dp else world)
    dp = a.dp or world // max(tp, 1)
    if tp < 1 or dp < 1 or tp * dp != world:
        fail(f"--tp {tp} × --dp {dp} must equal the world size {world}")
    if a.heads % tp or a.channels % a.heads or 256 % tp:
        fail(f"--heads {a.heads} must divide by t {tp}, --channels by --heads, and the vocabulary 256 by t")
    if not a.job:
        fail("give --job NAME (tptop launch sets $TPTOP_JOB)")

    # t x d grid: TP groups of consecutive ranks, DP groups across them (every rank makes every group)
    for d in range(dp):
        g = dist.new_group(list(range(d * tp, (d + 1) * tp)))
        if rank // tp == d:
            Comm.tp_group = g
    for t in range(tp):
        g = dist.new_group(list(range(t, world, tp)))
        if rank % tp == t:
            Comm.dp_group = g
    Comm.tp, Comm.tp_rank = tp, rank % tp
    dp_rank = rank // tp

    torch.manual_seed(a.seed + Comm.tp_rank)  # shards differ across TP ranks, replicas agree
    torch.set_num_threads(1)
    vocab = padded_vocab = 256
    model = GPT(a.layers, a.channels, a.heads, padded_vocab, a.seq, tp, Comm.tp_rank)
    # replicated tensors must start equal on every TP rank
    for p in model.parameters():
        if p.llmc_name in ("wpe", "ln1w", "ln1b", "attprojb", "ln2w", "ln2b", "fcprojb", "lnfw", "lnfb"):
            dist.broadcast(p.data, src=rank - Comm.tp_rank, group=Comm.tp_group)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    data = torch.frombuffer(bytearray(open(a.data, "rb").read()), dtype=torch.uint8).long()
    B, T = a.batch, a.seq

    # telemetry: local rank 0 creates the segment, the others open it after a barrier; a refusal
    # (the name is taken: exit 4, as tptrain's) is one line from the rank that met it, and every
    # rank exits with its status
    status = torch.tensor([0])
    job = None
    if local_rank == 0:
        try:
            job = Job.create(a.job, world_size=world, tp=tp, dp=dp, total_steps=a.steps,
                             model=dict(layers=a.layers, heads=a.heads, channels=a.channels, vocab=vocab,
                                        padded_vocab=padded_vocab, max_seq=a.seq, batch=B, seq=T, preset="torch"),
                             shards=gpt2_shards(a.layers, a.channels, a.heads, padded_vocab, a.seq, tp),
                             honours_control=True)
        except TelemetryError as e:
            print(f"torch_tp_gpt: {e}", file=sys.stderr, flush=True)
            status[0] = e.exit_status
    dist.all_reduce(status, op=dist.ReduceOp.MAX)
    if status[0]:
        sys.exit(int(status[0]))
    try:
        job = job or Job.open(a.job)
    except TelemetryError as e:
        report_and_exit(e, "torch_tp_gpt")
    w = job.rank_writer(world_rank=rank, local_rank=local_rank)

    def save_checkpoint(step):
        # the directory naming of tptrain's checkpoints (CheckpointLayout): DIR/step_<8 digits>
        path = os.path.join(a.checkpoint_dir, f"step_{step:08d}")
        os.makedirs(path, exist_ok=True)
        torch.save(dict(step=step, model=model.state_dict(), optimizer=opt.state_dict()),
                    os.path.join(path, f"rank_{rank}.pt"))
        dist.barrier()
        return path

    step = 0
    with w:
        while step < a.steps:
            decision = w.wait_while_paused(step, sync=broadcast_control, on_checkpoint=save_checkpoint)
            if decision.checkpoint:
                w.checkpointing()
                w.checkpoint_saved(step, save_checkpoint(step))
            if decision.desired == "stop":
                break
            t0 = time.perf_counter_ns()
            pos = ((step * dp + dp_rank) * 7919 * B * T) % (len(data) - B * T - 1)
            chunk = data[pos:pos + B * T + 1]
            x, y = chunk[:-1].view(B, T), chunk[1:].view(B, T)
            t1 = time.perf_counter_ns()
            Comm.comm_ns = 0
            loss = model(x, y)
            t2 = time.perf_counter_ns()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if dp > 1:
                for p in model.parameters():
                    Comm.all_reduce(p.grad, Comm.dp_group).div_(dp)
            t3 = time.perf_counter_ns()
            grad_norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters()))
            publish = a.shard_stats_every > 0 and (step == 0 or (step + 1) % a.shard_stats_every == 0)
            before = [p.detach().clone() for p in model.parameters()] if publish else None
            opt.step()
            t4 = time.perf_counter_ns()
            reported = loss.detach().clone()
            if dp > 1:
                dist.all_reduce(reported, group=Comm.dp_group)
                reported /= dp
            if a.step_ms > 0:
                time.sleep(max(0.0, a.step_ms / 1e3 - (time.perf_counter_ns() - t0) / 1e9))
            step += 1
            step_ns = time.perf_counter_ns() - t0
            comm = Comm.comm_ns
            w.step(step=step, loss=float(reported), lr=a.lr, tokens=B * T, grad_norm=grad_norm,
                   step_ns=step_ns, data_ns=t1 - t0, forward_ns=t2 - t1, backward_ns=t3 - t2,
                   optimizer_ns=t4 - t3, comm_ns=comm, compute_busy=max(0.0, 1 - comm / max(step_ns, 1)),
                   allreduce=Comm.stats, **memory_fields(model, opt))
            if publish:
                w.tensor_stats(step, shard_norms(model, before))
            if rank == 0:
                print(f"step {step}/{a.steps}  loss {float(reported):.4f}  {step_ns / 1e6:.1f} ms", flush=True)
        w.finish()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
