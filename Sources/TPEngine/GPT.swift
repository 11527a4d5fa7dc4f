// The tensor-parallel GPT-2 of one rank: parameter shards, activations and the
// forward/backward passes. Column-parallel: QKV, MLP fc. Row-parallel: attention projection,
// MLP projection. Vocab-parallel: token embedding and the tied LM head + cross-entropy.

import Glibc
import TPComm
import TPKernels

/// Named views of one flat buffer laid out in llm.c tensor order (local shard sizes).
public struct ParameterViews {
  public var wte: FloatPtr  // (Vp/t, C)
  public var wpe: FloatPtr  // (maxT, C)
  public var ln1w: FloatPtr  // (L, C)
  public var ln1b: FloatPtr  // (L, C)
  public var qkvw: FloatPtr  // (L, 3·C/t, C)   [q | k | v] rows of this rank's heads
  public var qkvb: FloatPtr  // (L, 3·C/t)
  public var attprojw: FloatPtr  // (L, C, C/t)
  public var attprojb: FloatPtr  // (L, C)
  public var ln2w: FloatPtr  // (L, C)
  public var ln2b: FloatPtr  // (L, C)
  public var fcw: FloatPtr  // (L, 4C/t, C)
  public var fcb: FloatPtr  // (L, 4C/t)
  public var fcprojw: FloatPtr  // (L, C, 4C/t)
  public var fcprojb: FloatPtr  // (L, C)
  public var lnfw: FloatPtr  // (C)
  public var lnfb: FloatPtr  // (C)

  /// The number of parameter tensors: the fields above (GPT-2's 16, in llm.c order).
  public static let tensorCount = 16

  init(base: FloatPtr, sizes s: [Int]) {
    precondition(s.count == Self.tensorCount, "one size per parameter tensor")
    var p = base
    func next(_ i: Int) -> FloatPtr { defer { p += s[i] }; return p }
    wte = next(0); wpe = next(1); ln1w = next(2); ln1b = next(3); qkvw = next(4); qkvb = next(5)
    attprojw = next(6); attprojb = next(7); ln2w = next(8); ln2b = next(9); fcw = next(10)
    fcb = next(11); fcprojw = next(12); fcprojb = next(13); lnfw = next(14); lnfb = next(15)
  }
}

/// What an `Activations` field holds before `init(base:table:)` points it into the arena.
private var unplaced: FloatPtr { FloatPtr(bitPattern: MemoryLayout<Float>.alignment)! }

/// Activations of one forward pass, kept for backward, and the backward scratch (local sizes).
/// Every field points into one arena laid out by `table`.
struct Activations {
  var encoded = unplaced  // (B,T,C)
  var ln1 = unplaced  // (L,B,T,C)
  var ln1Mean = unplaced  // (L,B,T)
  var ln1Rstd = unplaced  // (L,B,T)
  var qkv = unplaced  // (L,B,T,3·C/t)
  var atty = unplaced  // (L,B,T,C/t)
  var att = unplaced  // (L,B,H/t,T,T)
  var residual2 = unplaced  // (L,B,T,C)
  var ln2 = unplaced  // (L,B,T,C)
  var ln2Mean = unplaced  // (L,B,T)
  var ln2Rstd = unplaced  // (L,B,T)
  var fch = unplaced  // (L,B,T,4C/t)
  var fchGelu = unplaced  // (L,B,T,4C/t)
  var residual3 = unplaced  // (L,B,T,C)
  var proj = unplaced  // (B,T,C) a row-parallel layer's output, all-reduced in place; consumed
                       // at once, so one buffer serves every projection of every layer
  var lnf = unplaced  // (B,T,C)
  var lnfMean = unplaced  // (B,T)
  var lnfRstd = unplaced  // (B,T)
  var logits = unplaced  // (B,T,Vp/t); holds dlogits after backward starts
  // vocab-parallel cross-entropy, kept between forward and backward
  var rowMax = unplaced  // (B,T)
  var sumExpAndTarget = unplaced  // (B,T,2) Σexp, target logit (packed for one all-reduce)
  var losses = unplaced  // (B,T)
  // backward scratch
  var dresidual = unplaced  // (B,T,C)
  var dC = unplaced  // (B,T,C)
  var dqkv = unplaced  // (B,T,3·C/t)
  var datty = unplaced  // (B,T,C/t)
  var dfch = unplaced  // (B,T,4C/t)

  /// The arena, one row per field in arena order: the field and its element count (llm.c's
  /// `act_sizes`). The only place the layout is written down.
  static func table(config: GPTConfig, local: LocalShape, B: Int, T: Int)
    -> [(field: WritableKeyPath<Activations, FloatPtr>, count: Int)] {
    let (L, C, BT) = (config.numLayers, config.channels, B * T)
    let (NH, CL, FL, VL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal, local.vocabLocal)
    return [
      (\.encoded, BT * C),
      (\.ln1, L * BT * C), (\.ln1Mean, L * BT), (\.ln1Rstd, L * BT),
      (\.qkv, L * BT * 3 * CL), (\.atty, L * BT * CL), (\.att, L * B * NH * T * T),
      (\.residual2, L * BT * C),
      (\.ln2, L * BT * C), (\.ln2Mean, L * BT), (\.ln2Rstd, L * BT),
      (\.fch, L * BT * FL), (\.fchGelu, L * BT * FL),
      (\.residual3, L * BT * C), (\.proj, BT * C),
      (\.lnf, BT * C), (\.lnfMean, BT), (\.lnfRstd, BT),
      (\.logits, BT * VL),
      (\.rowMax, BT), (\.sumExpAndTarget, 2 * BT), (\.losses, BT),
      (\.dresidual, BT * C), (\.dC, BT * C), (\.dqkv, BT * 3 * CL), (\.datty, BT * CL), (\.dfch, BT * FL),
    ]
  }

  /// Points the fields into `base`, one after the other, as `table` lays them out.
  init(base: FloatPtr, table: [(field: WritableKeyPath<Activations, FloatPtr>, count: Int)]) {
    var next = base
    for (field, count) in table {
      self[keyPath: field] = next
      next += count
    }
  }
}

/// One layer's slices of the activations (local sizes, BT = B·T rows).
struct LayerActivations {
  var residual: FloatPtr  // (BT,C) the layer's input: the embeddings for layer 0
  var ln1: FloatPtr  // (BT,C)
  var ln1Mean: FloatPtr  // (BT)
  var ln1Rstd: FloatPtr  // (BT)
  var qkv: FloatPtr  // (BT,3·C/t)
  var atty: FloatPtr  // (BT,C/t)
  var att: FloatPtr  // (B,H/t,T,T)
  var residual2: FloatPtr  // (BT,C)
  var ln2: FloatPtr  // (BT,C)
  var ln2Mean: FloatPtr  // (BT)
  var ln2Rstd: FloatPtr  // (BT)
  var fch: FloatPtr  // (BT,4C/t)
  var fchGelu: FloatPtr  // (BT,4C/t)
  var residual3: FloatPtr  // (BT,C) the layer's output
}

public final class GPT {
  public let config: GPTConfig
  public let local: LocalShape
  public let B: Int
  public let T: Int
  public let layout: [TensorShard]
  /// Elements of each local parameter tensor, llm.c order.
  public let localSizes: [Int]
  public let numLocalParameters: Int

  /// Parameter, gradient and AdamW moment buffers (flat, `numLocalParameters` floats each); all
  /// four share `localSizes` offsets.
  public let paramsMemory: FloatPtr
  public let gradsMemory: FloatPtr
  public let adamM: FloatPtr
  public let adamV: FloatPtr
  /// The parameter tensors and their gradients, by name.
  public let params: ParameterViews
  public let grads: ParameterViews
  /// Per-tensor Σg² scratch for `gradientNorm` (one double per local tensor).
  let normScratch: UnsafeMutablePointer<Double>

  /// Token ids for the current batch: inputs (B,T) and targets (B,T).
  public let inputs: UnsafeMutablePointer<Int32>
  public let targets: UnsafeMutablePointer<Int32>

  var acts: Activations
  private let activationMemory: FloatPtr
  /// Floats in the activation arena.
  public let activationCount: Int
  let tp: TensorParallelMappings
  let columnLinear: ColumnParallelLinear
  let rowLinear: RowParallelLinear
  /// The rank's threads for the work between GEMMs (one: everything on the calling thread).
  public let pool: WorkerPool
  /// With `--overlap-grad-reduce`, the DP gradient buckets the backward starts and drives.
  var gradientBuckets: GradientBuckets? = nil

  /// Per-rank index range of parameters that are replicated over TP (counted once in norms).
  public let replicatedMask: [Bool]

  /// `ranksOnNode` ranks share this node's memory (each holds a similar shard); the constructor
  /// refuses, with one line, a model they cannot hold together. `threads` is the rank's share
  /// of cores: GEMMs use them through OpenBLAS, everything else through `pool`.
  /// `tpOverlapChunks` > 1 pipelines each row-parallel GEMM with its all-reduce in that many
  /// row chunks (`--overlap-tp`, TensorParallelOverlap.swift).
  public init(config: GPTConfig, local: LocalShape, batch B: Int, seq T: Int, tpGroup: Communicator,
              ranksOnNode: Int = 1, threads: Int = 1, tpOverlapChunks: Int = 1) throws {
    self.config = config
    self.local = local
    self.B = B
    self.T = T
    self.tp = TensorParallelMappings(group: tpGroup)
    // the largest TP all-reduce is one (B,T,C) activation
    tpGroup.reserveScratch(bytes: 4 * B * T * max(config.channels, 2))
    layout = TensorShard.gpt2Layout(config, tp: local.tp)
    localSizes = layout.map { $0.localCount(rank: local.tpRank) }
    replicatedMask = layout.map { $0.split == .replicated }
    numLocalParameters = localSizes.reduce(0, +)
    let C = config.channels
    let activationTable = Activations.table(config: config, local: local, B: B, T: T)
    activationCount = activationTable.reduce(0) { $0 + $1.count }
    // refuse up front what this node cannot hold, rather than being killed while touching pages
    let need = 4 * (4 * numLocalParameters + activationCount)
    if let available = Arena.availableBytes(), need * max(1, ranksOnNode) > available {
      func gib(_ b: Int) -> String { String(format: "%.2f GiB", Double(b) / Double(1 << 30)) }
      let who = ranksOnNode > 1 ? "\(ranksOnNode) ranks on this node need \(ranksOnNode) × " : "this rank needs "
      throw EngineError("\(who)\(gib(need)) (parameters, gradients and AdamW moments \(gib(16 * numLocalParameters)), activations \(gib(4 * activationCount))) but the node has \(gib(available)) available; use a smaller model, batch or sequence length, or spread the ranks over more nodes")
    }
    let n = numLocalParameters
    paramsMemory = try Arena.allocate(n, "parameters")
    gradsMemory = try Arena.allocate(n, "gradients")
    adamM = try Arena.allocate(n, "AdamW first moments")
    adamV = try Arena.allocate(n, "AdamW second moments")
    paramsMemory.initialize(repeating: 0, count: n)
    gradsMemory.initialize(repeating: 0, count: n)
    adamM.initialize(repeating: 0, count: n)
    adamV.initialize(repeating: 0, count: n)
    // per thread (the calling one included): attention backward's T·T, LayerNorm backward's 3·C
    // column sums, 3 doubles per tensor for AdamW and the gradient norm
    pool = WorkerPool(threads: threads, scratchFloats: max(T * T, 3 * C, 6 * localSizes.count))
    columnLinear = ColumnParallelLinear(tp: tp, pool: pool)
    rowLinear = RowParallelLinear(
      tp: tp, pool: pool,
      overlap: tpOverlapChunks > 1 && tpGroup.size > 1
        ? TensorParallelOverlap(group: tpGroup, rows: B * T, columns: C, chunks: tpOverlapChunks) : nil)
    normScratch = .allocate(capacity: localSizes.count)
    normScratch.initialize(repeating: 0, count: localSizes.count)
    params = ParameterViews(base: paramsMemory, sizes: localSizes)
    grads = ParameterViews(base: gradsMemory, sizes: localSizes)
    inputs = .allocate(capacity: B * T)
    targets = .allocate(capacity: B * T)
    inputs.initialize(repeating: 0, count: B * T)
    targets.initialize(repeating: 0, count: B * T)

    activationMemory = try Arena.allocate(activationCount, "activations")
    activationMemory.initialize(repeating: 0, count: activationCount)
    acts = Activations(base: activationMemory, table: activationTable)
  }

  deinit {
    for buffer in [paramsMemory, gradsMemory, adamM, adamV] { Arena.deallocate(buffer, numLocalParameters) }
    Arena.deallocate(activationMemory, activationCount)
    inputs.deallocate(); targets.deallocate(); normScratch.deallocate()
  }

  /// Bytes of one of the four flat parameter-sized buffers.
  public var parameterBytes: Int { numLocalParameters * 4 }
  /// Bytes of the activation arena.
  public var activationBytes: Int { activationCount * 4 }

  /// Layer `l`'s slices of the activations.
  @inline(__always)
  func layerActivations(_ l: Int) -> LayerActivations {
    let (C, BT) = (config.channels, B * T)
    let (NH, CL, FL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal)
    return LayerActivations(
      residual: l == 0 ? acts.encoded : acts.residual3 + (l - 1) * BT * C,
      ln1: acts.ln1 + l * BT * C, ln1Mean: acts.ln1Mean + l * BT, ln1Rstd: acts.ln1Rstd + l * BT,
      qkv: acts.qkv + l * BT * 3 * CL, atty: acts.atty + l * BT * CL, att: acts.att + l * B * NH * T * T,
      residual2: acts.residual2 + l * BT * C,
      ln2: acts.ln2 + l * BT * C, ln2Mean: acts.ln2Mean + l * BT, ln2Rstd: acts.ln2Rstd + l * BT,
      fch: acts.fch + l * BT * FL, fchGelu: acts.fchGelu + l * BT * FL,
      residual3: acts.residual3 + l * BT * C)
  }

  // MARK: forward

  /// Forward pass over `inputs`/`targets`; returns this replica's mean loss.
  public func forward() -> Float {
    let (L, C, BT) = (config.numLayers, config.channels, B * T)
    let (NH, CL, FL, VL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal, local.vocabLocal)
    let hs = config.headSize

    // vocab-parallel embedding + position embedding
    embeddingForward(acts.encoded, inputs, params.wte, BT, C, local.vocabStart, VL, pool: pool)
    tp.reduceEmbedding(acts.encoded, BT * C)
    positionForward(acts.encoded, params.wpe, B, T, C, pool: pool)
    layernormForward(acts.ln1, acts.ln1Mean, acts.ln1Rstd, acts.encoded, params.ln1w, params.ln1b, BT, C, pool: pool)

    for l in 0..<L {
      let layer = layerActivations(l)

      // ln1 = LayerNorm(residual) was written by the previous layer's last sweep (or above)
      // attention: column-parallel QKV → local heads → row-parallel projection (bias deferred)
      columnLinear.forward(layer.qkv, layer.ln1, params.qkvw + l * 3 * CL * C, params.qkvb + l * 3 * CL, BT, C, 3 * CL)
      attentionForward(layer.atty, layer.att, layer.qkv, B, T, NH, hs, pool: pool)
      rowLinear.forward(acts.proj, layer.atty, params.attprojw + l * C * CL, BT, CL, C)
      // residual2 = residual + attproj + bias; ln2 = LayerNorm(residual2)
      residualLayernormForward(layer.residual2, layer.ln2, layer.ln2Mean, layer.ln2Rstd, layer.residual, acts.proj,
                               params.attprojb + l * C, params.ln2w + l * C, params.ln2b + l * C, BT, C, pool: pool)
      // MLP: column-parallel fc → GELU → row-parallel projection (bias deferred)
      columnLinear.forward(layer.fch, layer.ln2, params.fcw + l * FL * C, params.fcb + l * FL, BT, C, FL)
      geluForward(layer.fchGelu, layer.fch, BT * FL, pool: pool)
      rowLinear.forward(acts.proj, layer.fchGelu, params.fcprojw + l * C * FL, BT, FL, C)
      // residual3 = residual2 + fcproj + bias, then the next LayerNorm (layer l+1's ln1, or lnf)
      if l + 1 < L {
        let next = layerActivations(l + 1)
        residualLayernormForward(layer.residual3, next.ln1, next.ln1Mean, next.ln1Rstd, layer.residual2, acts.proj,
                                 params.fcprojb + l * C, params.ln1w + (l + 1) * C, params.ln1b + (l + 1) * C,
                                 BT, C, pool: pool)
      } else {
        residualLayernormForward(layer.residual3, acts.lnf, acts.lnfMean, acts.lnfRstd, layer.residual2, acts.proj,
                                 params.fcprojb + l * C, params.lnfw, params.lnfb, BT, C, pool: pool)
      }
    }
    // tied LM head (column-parallel over the vocabulary), then vocab-parallel cross-entropy
    columnLinear.forward(acts.logits, acts.lnf, params.wte, nil, BT, C, VL)
    crossEntropyLocalMax(acts.rowMax, acts.logits, BT, VL, local.vocabValid, pool: pool)
    tp.reduceLogitMax(acts.rowMax, BT)
    crossEntropyLocalSums(acts.sumExpAndTarget, acts.logits, acts.rowMax, targets, BT, VL, local.vocabValid,
                          local.vocabStart, pool: pool)
    tp.reduceSumExpAndTarget(acts.sumExpAndTarget, 2 * BT)
    return crossEntropyFinish(acts.losses, acts.rowMax, acts.sumExpAndTarget, BT)
  }

  // MARK: backward

  /// Backward pass of the last forward; overwrites all of `grads` (each parameter's gradient has
  /// one producer, `wte` two: the LM head writes, the embedding adds). The loss is the mean over
  /// B·T positions of this replica.
  public func backward() {
    let (L, C, BT) = (config.numLayers, config.channels, B * T)
    let (NH, CL, FL, VL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal, local.vocabLocal)
    let hs = config.headSize

    crossEntropyBackward(acts.logits, acts.rowMax, acts.sumExpAndTarget, targets, 1 / Float(BT), BT, VL,
                         local.vocabValid, local.vocabStart, pool: pool)
    // LM head: dlnf = dlogits · wte_local (summed over TP), dwte_local = dlogitsᵀ lnf
    columnLinear.backward(acts.dC, grads.wte, nil, acts.logits, acts.lnf, params.wte, BT, C, VL)
    let last = layerActivations(L - 1)
    // dresidual = ∂loss/∂residual3[L-1]; its column sums are the last MLP projection's bias grad
    layernormBackward(acts.dresidual, grads.lnfw, grads.lnfb, acts.dC, last.residual3, params.lnfw, acts.lnfMean,
                      acts.lnfRstd, BT, C, accumulateInput: false, dinpColumnSums: grads.fcprojb + (L - 1) * C,
                      pool: pool)
    gradientBuckets?.ready(0)

    for l in stride(from: L - 1, through: 0, by: -1) {
      let layer = layerActivations(l)
      let dres = acts.dresidual  // ∂loss/∂residual3 on entry, ∂loss/∂residual on exit

      // MLP projection (row-parallel). Its bias gradient (Σ dres) was produced by the LayerNorm
      // backward that finished dres.
      rowLinear.backward(acts.dfch, grads.fcprojw + l * C * FL, dres, layer.fchGelu, params.fcprojw + l * C * FL,
                         BT, FL, C)
      gradientBuckets?.progress()
      geluBiasBackward(acts.dfch, grads.fcb + l * FL, layer.fch, BT, FL, pool: pool)
      columnLinear.backward(acts.dC, grads.fcw + l * FL * C, nil, acts.dfch, layer.ln2, params.fcw + l * FL * C,
                            BT, C, FL)
      gradientBuckets?.progress()
      layernormBackward(dres, grads.ln2w + l * C, grads.ln2b + l * C, acts.dC, layer.residual2, params.ln2w + l * C,
                        layer.ln2Mean, layer.ln2Rstd, BT, C, dinpColumnSums: grads.attprojb + l * C, pool: pool)
      // attention projection (row-parallel), attention, QKV (column-parallel)
      rowLinear.backward(acts.datty, grads.attprojw + l * C * CL, dres, layer.atty, params.attprojw + l * C * CL,
                         BT, CL, C)
      gradientBuckets?.progress()
      attentionBackward(acts.dqkv, pool.scratch(0), acts.datty, layer.qkv, layer.att, B, T, NH, hs, pool: pool)
      gradientBuckets?.progress()
      columnLinear.backward(acts.dC, grads.qkvw + l * 3 * CL * C, grads.qkvb + l * 3 * CL, acts.dqkv, layer.ln1,
                            params.qkvw + l * 3 * CL * C, BT, C, 3 * CL)
      // dres becomes ∂loss/∂residual: for l > 0 that is residual3[l-1], the output of the
      // previous layer's MLP projection, whose bias gradient is its column sums
      layernormBackward(dres, grads.ln1w + l * C, grads.ln1b + l * C, acts.dC, layer.residual, params.ln1w + l * C,
                        layer.ln1Mean, layer.ln1Rstd, BT, C,
                        dinpColumnSums: l > 0 ? grads.fcprojb + (l - 1) * C : nil, pool: pool)
      gradientBuckets?.ready(L - l)
    }
    embeddingBackward(grads.wte, acts.dresidual, inputs, BT, C, local.vocabStart, VL, pool: pool)
    positionBackward(grads.wpe, acts.dresidual, B, T, C, pool: pool)
    gradientBuckets?.ready(L + 1)
  }
}
