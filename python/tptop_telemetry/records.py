"""Slot payloads: encoding step, event and tensor-statistics records into the 248 bytes after a
slot's seqlock word, the checksum that ends them, and decoding (for tests and small readers).

The checksum is the one of ``RecordCodec.checksum`` in Sources/Telemetry/Records.swift, word for
word; Python integers do not wrap, so every product and sum is masked to 64 bits.
"""

import math
import struct

from .layout import Slot, EVENT_KINDS, HISTOGRAM_BUCKETS

M64 = (1 << 64) - 1

# The 30 checksummed words (slot bytes 8..<248) and the checksum word.
_WORDS = struct.Struct("<30Q")
_CHECKSUM = struct.Struct("<Q")

# Step record, slot bytes 8..<248: kind, 0, step, timestamp, tokens, loss, lr, grad norm,
# compute busy, GFLOP/s, rank, 6 step-time ns, all-reduce count, bytes, total ns, max ns,
# 5 memory byte counts, 16 histogram buckets.
_STEP = struct.Struct("<IIqQqfffffI6Qq3Q5Q16I")
# Event record head, slot bytes 8..<40: kind, event kind, step, timestamp, text length, rank.
_EVENT = struct.Struct("<IIqQII")
# Tensor-statistics head, slot bytes 8..<40: kind, count, step, timestamp, rank, first tensor.
_STATS = struct.Struct("<IIqQII")

assert _STEP.size == Slot.CHECKSUM - Slot.PAYLOAD
assert _EVENT.size == Slot.TEXT - Slot.PAYLOAD == _STATS.size


def _key_pair(k):
    return ((0xA0761D6478BD642F + k * 0x9E3779B97F4A7C15) & M64,
            (0xE7037ED1A0B428DB + k * 0xC2B2AE3D27D4EB4F) & M64)


_KEYS = [_key_pair(k) for k in range(0, 30, 2)]  # index k // 2


def _mum(x, y, k):
    """One multiply-fold of a word pair, each word xor-ed with a key for its position."""
    ka, kb = _KEYS[k >> 1]
    p = (x ^ ka) * (y ^ kb)
    return (p >> 64) ^ (p & M64)


def _rotl(v, n):
    return ((v << n) | (v >> (64 - n))) & M64


def checksum(w):
    """64-bit checksum of the 30 payload words ``w`` (slot bytes 8..<248)."""
    l0 = _mum(w[0], w[1], 0)
    l1 = _mum(w[2], w[3], 2)
    l2 = _mum(w[4], w[5], 4)
    l3 = _mum(w[6], w[7], 6)
    l0 = ((l0 + _mum(w[8], w[9], 8)) & M64) ^ _mum(w[16], w[17], 16)
    l1 = ((l1 + _mum(w[10], w[11], 10)) & M64) ^ _mum(w[18], w[19], 18)
    l2 = ((l2 + _mum(w[12], w[13], 12)) & M64) ^ _mum(w[20], w[21], 20)
    l3 = ((l3 + _mum(w[14], w[15], 14)) & M64) ^ _mum(w[22], w[23], 22)
    l0 = (l0 + _mum(w[24], w[25], 24)) & M64
    l1 = (l1 + _mum(w[26], w[27], 26)) & M64
    l2 = (l2 + _mum(w[28], w[29], 28)) & M64
    h = l0 ^ _rotl(l1, 17) ^ _rotl(l2, 31) ^ _rotl(l3, 47)
    h ^= h >> 29
    h = (h * 0xBF58476D1CE4E5B9) & M64
    h ^= h >> 32
    return h


def seal(body):
    """``body`` (240 bytes) followed by its checksum: a complete 248-byte payload."""
    return body + _CHECKSUM.pack(checksum(_WORDS.unpack(body)))


# Halfway between the largest f32 and 2**128: from here a C cast rounds to infinity.
_F32_OVERFLOW = 3.4028235677973366e38


def f32(v):
    """A float that struct's ``f`` accepts: finite values that a C cast would round to infinity
    become ±inf (struct refuses them instead)."""
    v = float(v)
    if math.isfinite(v) and abs(v) >= _F32_OVERFLOW:
        return math.copysign(math.inf, v)
    return v


def _u64(v):
    return int(v) & M64


def _i64(v):
    v = int(v) & M64
    return v - (1 << 64) if v >> 63 else v


STEP_FIELDS = (
    "tokens", "loss", "lr", "grad_norm", "compute_busy", "gflops",
    "step_ns", "forward_ns", "backward_ns", "optimizer_ns", "comm_ns", "data_ns",
    "allreduce_count", "allreduce_bytes", "allreduce_total_ns", "allreduce_max_ns",
    "rss_bytes", "param_bytes", "grad_bytes", "optimizer_bytes", "activation_bytes", "histogram",
    "comm_peer_wait_us",
)


def encode_step(step, rank, timestamp_ns, tokens=0, loss=0.0, lr=0.0, grad_norm=0.0,
                compute_busy=0.0, gflops=0.0, step_ns=0, forward_ns=0, backward_ns=0,
                optimizer_ns=0, comm_ns=0, data_ns=0, allreduce_count=0, allreduce_bytes=0,
                allreduce_total_ns=0, allreduce_max_ns=0, rss_bytes=0, param_bytes=0,
                grad_bytes=0, optimizer_bytes=0, activation_bytes=0, histogram=None,
                comm_peer_wait_us=0):
    """A step record's 248-byte payload (times in ns, sizes in bytes). ``comm_ns`` is the
    exposed communication, ``allreduce_total_ns`` the time collectives were in flight and
    ``comm_peer_wait_us`` the part of ``comm_ns`` spent waiting for a slower peer (minor 3)."""
    h = list(histogram or ())[:HISTOGRAM_BUCKETS]
    h += [0] * (HISTOGRAM_BUCKETS - len(h))
    body = _STEP.pack(
        Slot.KIND_STEP, int(comm_peer_wait_us) & 0xFFFFFFFF, _i64(step), _u64(timestamp_ns), _i64(tokens),
        f32(loss), f32(lr), f32(grad_norm), f32(compute_busy), f32(gflops), int(rank) & 0xFFFFFFFF,
        _u64(step_ns), _u64(forward_ns), _u64(backward_ns), _u64(optimizer_ns), _u64(comm_ns), _u64(data_ns),
        _i64(allreduce_count), _u64(allreduce_bytes), _u64(allreduce_total_ns), _u64(allreduce_max_ns),
        _u64(rss_bytes), _u64(param_bytes), _u64(grad_bytes), _u64(optimizer_bytes), _u64(activation_bytes),
        *(int(b) & 0xFFFFFFFF for b in h))
    return seal(body)


def fit_utf8(text, capacity):
    """``text`` as UTF-8, cut at a character boundary to at most ``capacity`` bytes."""
    b = text.encode("utf-8", "replace")
    if len(b) <= capacity:
        return b
    # the text was just encoded, so only the cut tail can be a partial character
    return b[:capacity].decode("utf-8", "ignore").encode("utf-8")


def encode_event(kind, step, rank, timestamp_ns, text=""):
    """An event record's payload. ``kind`` is a name of ``EVENT_KINDS`` or its number."""
    k = EVENT_KINDS[kind] if isinstance(kind, str) else int(kind)
    t = fit_utf8(text, Slot.TEXT_CAPACITY)
    head = _EVENT.pack(Slot.KIND_EVENT, k, _i64(step), _u64(timestamp_ns), len(t), int(rank) & 0xFFFFFFFF)
    return seal(head + t.ljust(Slot.TEXT_CAPACITY, b"\0"))


def encode_tensor_stats(step, rank, timestamp_ns, first_tensor, norms):
    """A tensor-statistics payload: ``norms`` is a sequence of (weight norm, gradient norm,
    update ratio) for tensors ``first_tensor``, ``first_tensor + 1``, … (at most 17)."""
    entries = list(norms)[:Slot.STATS_CAPACITY]
    head = _STATS.pack(Slot.KIND_TENSOR_STATS, len(entries), _i64(step), _u64(timestamp_ns),
                       int(rank) & 0xFFFFFFFF, int(first_tensor) & 0xFFFFFFFF)
    flat = [f32(v) for e in entries for v in e]
    body = head + struct.pack(f"<{len(flat)}f", *flat)
    return seal(body.ljust(Slot.CHECKSUM - Slot.PAYLOAD, b"\0"))


_EVENT_NAMES = {v: k for k, v in EVENT_KINDS.items()}


def decode(payload):
    """Decodes a 248-byte payload into a dict with ``type`` "step", "event" or "tensor_stats";
    None when the checksum fails or the kind is unknown (a damaged record)."""
    words = _WORDS.unpack_from(payload)
    (stored,) = _CHECKSUM.unpack_from(payload, 240)
    if stored != checksum(words):
        return None
    kind = struct.unpack_from("<I", payload)[0]
    if kind == Slot.KIND_STEP:
        v = _STEP.unpack_from(payload)
        r = dict(type="step", step=v[2], timestamp_ns=v[3], rank=v[10], comm_peer_wait_us=v[1])
        r.update(zip(STEP_FIELDS[:6], (v[4],) + v[5:10]))
        r.update(zip(STEP_FIELDS[6:21], v[11:26]))
        r["histogram"] = list(v[26:42])
        return r
    if kind == Slot.KIND_EVENT:
        _, ek, step, ts, n, rank = _EVENT.unpack_from(payload)
        if ek not in _EVENT_NAMES:
            return None
        raw = payload[_EVENT.size:_EVENT.size + min(n, Slot.TEXT_CAPACITY)].split(b"\0", 1)[0]
        return dict(type="event", kind=_EVENT_NAMES[ek], step=step, timestamp_ns=ts, rank=rank,
                    text=raw.decode("utf-8", "replace"))
    if kind == Slot.KIND_TENSOR_STATS:
        _, n, step, ts, rank, first = _STATS.unpack_from(payload)
        if n > Slot.STATS_CAPACITY:
            return None
        flat = struct.unpack_from(f"<{3 * n}f", payload, _STATS.size)
        return dict(type="tensor_stats", step=step, timestamp_ns=ts, rank=rank, first_tensor=first,
                    entries=[tuple(flat[3 * i:3 * i + 3]) for i in range(n)])
    return None
