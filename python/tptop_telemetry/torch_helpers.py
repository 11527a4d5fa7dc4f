"""Optional PyTorch helpers (import this module only where torch is installed).

- ``timed_all_reduce`` / ``patch_all_reduce``: time ``torch.distributed.all_reduce`` calls into
  an ``AllReduceStats`` (count, bytes, total and max latency, log2-µs histogram).
- ``broadcast_control``: the ``sync`` for ``RankWriter.wait_while_paused`` — world rank 0's
  control decision broadcast to every rank, so all ranks pause at the same step.
- ``memory_fields``: parameter, gradient, optimizer-state and resident bytes of a process.
"""

import time

import torch
import torch.distributed as dist

from .writer import ProcessMemory


def timed_all_reduce(tensor, stats, op=None, group=None, _reduce=None):
    """``dist.all_reduce(tensor, op, group)``, its latency and payload recorded in ``stats``."""
    reduce = _reduce or dist.all_reduce
    t0 = time.perf_counter_ns()
    reduce(tensor, op=op if op is not None else dist.ReduceOp.SUM, group=group)
    stats.record(time.perf_counter_ns() - t0, tensor.numel() * tensor.element_size())
    return tensor


def patch_all_reduce(stats):
    """Makes every ``torch.distributed.all_reduce`` call of this process (synchronous ones)
    record into ``stats``. Returns a function that undoes the patch."""
    original = dist.all_reduce

    def all_reduce(tensor, op=dist.ReduceOp.SUM, group=None, async_op=False):
        if async_op:
            return original(tensor, op=op, group=group, async_op=True)
        return timed_all_reduce(tensor, stats, op=op, group=group, _reduce=original)

    dist.all_reduce = all_reduce

    def undo():
        dist.all_reduce = original
    return undo


def broadcast_control(values, src=0, group=None):
    """Rank ``src``'s [desired state, checkpoint counter] on every rank (a ``sync`` for
    ``RankWriter.control`` and ``wait_while_paused``)."""
    t = torch.tensor([int(v) for v in values], dtype=torch.int64)
    dist.broadcast(t, src=src, group=group)
    return t.tolist()


_memory = None


def memory_fields(model=None, optimizer=None):
    """Step-record memory fields (bytes): rss_bytes of this process and, when given, the
    model's param_bytes and grad_bytes and the optimizer's state bytes."""
    global _memory
    if _memory is None:
        _memory = ProcessMemory()
    f = dict(rss_bytes=_memory.rss_bytes())
    if model is not None:
        params = list(model.parameters())
        f["param_bytes"] = sum(p.numel() * p.element_size() for p in params)
        f["grad_bytes"] = sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None)
    if optimizer is not None:
        f["optimizer_bytes"] = sum(v.numel() * v.element_size() for s in optimizer.state.values()
                                   for v in s.values() if torch.is_tensor(v))
    return f
