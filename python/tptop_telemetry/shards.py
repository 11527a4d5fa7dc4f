"""Shard layouts for the job description (what the dashboard's Shards view shows)."""


def gpt2_shards(layers, channels, heads, padded_vocab, max_seq, tp):
    """The 16 GPT-2 parameter tensors in llm.c order, split over ``tp`` ranks the Megatron way
    (the layout ``TensorShard.gpt2Layout`` publishes for tptrain): vocab-parallel wte,
    column-parallel qkv and fc (QKV as three ranges: its Q, K and V rows), row-parallel attproj
    and fcproj, the rest replicated. Per-layer tensors are stacked: shape [L, ...]."""
    L, C, H, Vp, T, t = layers, channels, heads, padded_vocab, max_seq, tp
    hl, cl, fl, vl = H // t, C // t, 4 * C // t, Vp // t

    def rep(name, shape):
        return dict(name=name, shape=shape, split="replicated", split_dim=None,
                    ranks=[[] for _ in range(t)], descriptions=["all (replicated)"] * t)

    def heads_of(r):
        return f"head {r * hl} of {H}" if hl == 1 else f"heads {r * hl}–{(r + 1) * hl - 1} of {H}"

    qkv_ranks = [[(b * C + r * cl, b * C + (r + 1) * cl) for b in range(3)] for r in range(t)]
    qkv_desc = [f"{heads_of(r)}: q/k/v rows {r * cl}–{(r + 1) * cl - 1} of each {C}" for r in range(t)]
    col_c = [[(r * cl, (r + 1) * cl)] for r in range(t)]
    col_f = [[(r * fl, (r + 1) * fl)] for r in range(t)]
    fc_desc = [f"rows {r * fl}–{(r + 1) * fl - 1} of {4 * C}" for r in range(t)]

    def split(name, shape, kind, dim, ranks, desc):
        return dict(name=name, shape=shape, split=kind, split_dim=dim, ranks=ranks, descriptions=desc)

    per_layer = [L, C]
    return [
        split("wte", [Vp, C], "vocab", 0, [[(r * vl, (r + 1) * vl)] for r in range(t)],
              [f"vocab rows {r * vl}–{(r + 1) * vl - 1} of {Vp}" for r in range(t)]),
        rep("wpe", [T, C]), rep("ln1w", per_layer), rep("ln1b", per_layer),
        split("qkvw", [L, 3 * C, C], "column", 1, qkv_ranks, qkv_desc),
        split("qkvb", [L, 3 * C], "column", 1, qkv_ranks, qkv_desc),
        split("attprojw", [L, C, C], "row", 2, col_c,
              [f"{heads_of(r)}: input cols {r * cl}–{(r + 1) * cl - 1} of {C}" for r in range(t)]),
        rep("attprojb", per_layer), rep("ln2w", per_layer), rep("ln2b", per_layer),
        split("fcw", [L, 4 * C, C], "column", 1, col_f, fc_desc),
        split("fcb", [L, 4 * C], "column", 1, col_f, fc_desc),
        split("fcprojw", [L, C, 4 * C], "row", 2, col_f,
              [f"input cols {r * fl}–{(r + 1) * fl - 1} of {4 * C}" for r in range(t)]),
        rep("fcprojb", per_layer), rep("lnfw", [C]), rep("lnfb", [C]),
    ]
