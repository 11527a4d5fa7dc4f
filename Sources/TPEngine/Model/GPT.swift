// The tensor-parallel GPT-2 of one rank: parameter shards, activations and the
// forward/backward passes. Column-parallel: QKV, MLP fc. Row-parallel: attention projection,
// MLP projection. Vocab-parallel: token embedding and the tied LM head + cross-entropy.

import Glibc
import JobSchema
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
/// Every field points into one arena laid out by `table`. R is this rank's token rows outside
/// the tensor-parallel blocks: B·T, or B·T/t with sequence parallelism. Lk is the layers kept
/// (L, or 1 working layer under full recomputation), La the layers of attention probabilities
/// kept (L without recomputation, else 1).
struct Activations {
  var encoded = unplaced  // (R,C)
  var ln1 = unplaced  // (Lk,R,C)
  var ln1Mean = unplaced  // (Lk,R)
  var ln1Rstd = unplaced  // (Lk,R)
  var qkv = unplaced  // (Lk,B,T,3·C/t)
  var atty = unplaced  // (Lk,B,T,C/t)
  var att = unplaced  // (La,B,H/t,T,T)
  var residual2 = unplaced  // (Lk,R,C)
  var ln2 = unplaced  // (Lk,R,C)
  var ln2Mean = unplaced  // (Lk,R)
  var ln2Rstd = unplaced  // (Lk,R)
  var fch = unplaced  // (Lk,B,T,4C/t)
  var fchGelu = unplaced  // (Lk,B,T,4C/t)
  var residual3 = unplaced  // (L,R,C) each layer's output: always kept, the next layer's input
  var proj = unplaced  // (R,C) a row-parallel layer's output, all-reduced (or reduce-scattered);
                       // consumed at once, so one buffer serves every projection of every layer
  var lnf = unplaced  // (R,C)
  var lnfMean = unplaced  // (R)
  var lnfRstd = unplaced  // (R)
  var logits = unplaced  // (B,T,Vp/t); holds dlogits after backward starts
  // vocab-parallel cross-entropy, kept between forward and backward
  var rowMax = unplaced  // (B,T)
  var sumExpAndTarget = unplaced  // (B,T,2) Σexp, target logit (packed for one all-reduce)
  var losses = unplaced  // (B,T)
  // backward scratch
  var dresidual = unplaced  // (R,C)
  var dC = unplaced  // (R,C)
  var dqkv = unplaced  // (B,T,3·C/t)
  var datty = unplaced  // (B,T,C/t)
  var dfch = unplaced  // (B,T,4C/t)
  // sequence parallelism only (no elements without it): the full-row buffers
  var gathered = unplaced  // (B,T,C) rows all-gathered from every rank's slice
  var partial = unplaced  // (B,T,C) per-rank partial sums before their reduce-scatter

  /// The arena, one row per field in arena order: the field and its element count (llm.c's
  /// `act_sizes`). The only place the layout is written down.
  static func table(config: GPTConfig, local: LocalShape, B: Int, T: Int, options: ActivationOptions)
    -> [(field: WritableKeyPath<Activations, FloatPtr>, count: Int)] {
    let (L, C, BT) = (config.numLayers, config.channels, B * T)
    let (NH, CL, FL, VL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal, local.vocabLocal)
    let R = options.sequenceParallel ? BT / local.tp : BT
    let (Lk, La) = (options.layersKept(L), options.attentionLayersKept(L))
    let full = options.sequenceParallel ? BT * C : 0
    return [
      (\.encoded, R * C),
      (\.ln1, Lk * R * C), (\.ln1Mean, Lk * R), (\.ln1Rstd, Lk * R),
      (\.qkv, Lk * BT * 3 * CL), (\.atty, Lk * BT * CL), (\.att, La * B * NH * T * T),
      (\.residual2, Lk * R * C),
      (\.ln2, Lk * R * C), (\.ln2Mean, Lk * R), (\.ln2Rstd, Lk * R),
      (\.fch, Lk * BT * FL), (\.fchGelu, Lk * BT * FL),
      (\.residual3, L * R * C), (\.proj, R * C),
      (\.lnf, R * C), (\.lnfMean, R), (\.lnfRstd, R),
      (\.logits, BT * VL),
      (\.rowMax, BT), (\.sumExpAndTarget, 2 * BT), (\.losses, BT),
      (\.dresidual, R * C), (\.dC, R * C), (\.dqkv, BT * 3 * CL), (\.datty, BT * CL), (\.dfch, BT * FL),
      (\.gathered, full), (\.partial, full),
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

/// One layer's slices of the activations (local sizes, BT = B·T rows; R = this rank's rows
/// outside the tensor-parallel blocks, BT or BT/t with sequence parallelism).
struct LayerActivations {
  var residual: FloatPtr  // (R,C) the layer's input: the embeddings for layer 0
  var ln1: FloatPtr  // (R,C)
  var ln1Mean: FloatPtr  // (R)
  var ln1Rstd: FloatPtr  // (R)
  var qkv: FloatPtr  // (BT,3·C/t)
  var atty: FloatPtr  // (BT,C/t)
  var att: FloatPtr  // (B,H/t,T,T)
  var residual2: FloatPtr  // (R,C)
  var ln2: FloatPtr  // (R,C)
  var ln2Mean: FloatPtr  // (R)
  var ln2Rstd: FloatPtr  // (R)
  var fch: FloatPtr  // (BT,4C/t)
  var fchGelu: FloatPtr  // (BT,4C/t)
  var residual3: FloatPtr  // (R,C) the layer's output
}

/// How far `GPT.layerForward` runs.
enum LayerStage {
  /// Up to the MLP's GELU: what the backward reads (full recomputation stops here).
  case mlpActivation
  /// The whole layer, through the residual add and the next LayerNorm.
  case output
}

public final class GPT {
  public let config: GPTConfig
  public let local: LocalShape
  public let B: Int
  public let T: Int
  public let layout: [ShardedTensor]
  /// Elements of each local parameter tensor, llm.c order.
  public let localSizes: [Int]
  public let numLocalParameters: Int

  /// Parameter and gradient buffers (flat, `partition.paddedCount` floats: `numLocalParameters`
  /// and the distributed optimizer's padding) and the AdamW moments (`partition.shardCount`
  /// floats: moment k belongs to parameter `partition.block.lowerBound + k`); parameters and
  /// gradients share `localSizes` offsets.
  public let paramsMemory: FloatPtr
  public let gradsMemory: FloatPtr
  public let adamM: FloatPtr
  public let adamV: FloatPtr
  /// The part of the flat parameters whose optimizer state this rank holds (all of them unless
  /// the distributed optimizer splits it over DP).
  public let partition: OptimizerPartition
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
  /// Sequence parallelism and activation recomputation.
  /// The run's parallel configuration, resolved against the grid.
  public let parallel: ParallelConfig
  public let activationOptions: ActivationOptions
  /// This rank's token rows outside the tensor-parallel blocks, and the first of them in the
  /// flattened (B·T) rows: all B·T from 0, or with sequence parallelism B·T/t from tpRank·B·T/t.
  public let rows: Int
  public let firstRow: Int
  /// The full-row buffers of sequence parallelism (nil without it).
  let sequence: SequenceParallelBuffers?
  /// Runs of consecutive replicated tensors in the flat gradient: (offset, count) in floats.
  let replicatedRuns: [(offset: Int, count: Int)]
  let tp: TensorParallelMappings
  let columnLinear: ColumnParallelLinear
  let rowLinear: RowParallelLinear
  /// The rank's threads for the work between GEMMs (one: everything on the calling thread).
  public let pool: WorkerPool
  /// With `--overlap-grad-reduce`, the DP gradient buckets the backward starts and drives.
  var gradientBuckets: GradientBuckets? = nil

  /// Per tensor of the layout (llm.c's order): whether every TP rank holds all of it
  /// (replicated: layer norms, the row-parallel linears' biases, position embeddings), so the
  /// global norm counts its squares once, not t times.
  public let replicatedMask: [Bool]

  /// `ranksOnNode` ranks share this node's memory (each holds a similar shard); the constructor
  /// refuses, with one line, a model they cannot hold together. `threads` is the rank's share
  /// of cores: everything, GEMMs included (`pooledSgemm`), runs on them through `pool`.
  /// `parallel` says what is on: sequence parallelism (B·T must be divisible by t) and
  /// recomputation; the distributed optimizer (this rank, DP rank `dpRank`, then holds the AdamW
  /// moments of its block only); the parallel linears' collectives pipelined with their GEMMs in
  /// row chunks (`--overlap-tp`, TensorParallelOverlap.swift).
  public init(config: GPTConfig, local: LocalShape, batch B: Int, seq T: Int, tpGroup: Communicator,
              parallel: ParallelConfig? = nil, dpRank: Int = 0, ranksOnNode: Int = 1, threads: Int = 1) throws {
    let parallel = parallel ?? ParallelConfig(tp: local.tp, dp: 1)
    self.config = config
    self.local = local
    self.B = B
    self.T = T
    self.tp = TensorParallelMappings(group: tpGroup)
    self.parallel = parallel
    let options = parallel.activations
    activationOptions = options
    if options.sequenceParallel {
      rows = try divide(B * T, local.tp, "--sequence-parallel needs batch × seq divisible by tp (token rows per rank)")
      firstRow = local.tpRank * rows
    } else {
      (rows, firstRow) = (B * T, 0)
    }
    layout = ShardedTensor.gpt2Layout(config, tp: local.tp)
    localSizes = layout.map { $0.localCount(tp: local.tpRank) }
    replicatedMask = layout.map { $0.split == .replicated }
    replicatedRuns = Self.runs(of: replicatedMask, sizes: localSizes)
    numLocalParameters = localSizes.reduce(0, +)
    // the largest TP all-reduce is one (B,T,C) activation, or with sequence parallelism a run of
    // replicated gradients
    let largestRun = options.sequenceParallel ? replicatedRuns.map(\.count).max() ?? 0 : 0
    tpGroup.reserveScratch(bytes: 4 * max(B * T * max(config.channels, 2), largestRun))
    partition = OptimizerPartition(count: numLocalParameters, shards: parallel.optimizerShards,
                                   index: parallel.distributedOptimizer ? dpRank : 0)
    let C = config.channels
    let activationTable = Activations.table(config: config, local: local, B: B, T: T, options: options)
    activationCount = activationTable.reduce(0) { $0 + $1.count }
    // refuse up front what this node cannot hold, rather than being killed while touching pages
    let (np, nm) = (partition.paddedCount, partition.shardCount)
    let need = 4 * (2 * np + 2 * nm + activationCount)
    if let available = Arena.availableBytes(), need * max(1, ranksOnNode) > available {
      func gib(_ b: Int) -> String { String(format: "%.2f GiB", Double(b) / Double(1 << 30)) }
      let who = ranksOnNode > 1 ? "\(ranksOnNode) ranks on this node need \(ranksOnNode) × " : "this rank needs "
      throw EngineError("\(who)\(gib(need)) (parameters, gradients and AdamW moments \(gib(8 * np + 8 * nm)), activations \(gib(4 * activationCount))) but the node has \(gib(available)) available; use a smaller model, batch or sequence length, or spread the ranks over more nodes")
    }
    paramsMemory = try Arena.allocate(np, "parameters")
    gradsMemory = try Arena.allocate(np, "gradients")
    adamM = try Arena.allocate(nm, "AdamW first moments")
    adamV = try Arena.allocate(nm, "AdamW second moments")
    paramsMemory.initialize(repeating: 0, count: np)
    gradsMemory.initialize(repeating: 0, count: np)
    adamM.initialize(repeating: 0, count: nm)
    adamV.initialize(repeating: 0, count: nm)
    // per thread (the calling one included): attention backward's T·T, LayerNorm backward's 3·C
    // column sums, 3 doubles per tensor for AdamW and the gradient norm
    pool = WorkerPool(threads: threads, scratchFloats: max(T * T, 3 * C, 6 * localSizes.count))
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
    sequence = options.sequenceParallel ? SequenceParallelBuffers(gathered: acts.gathered, partial: acts.partial) : nil
    let overlap = parallel.tpChunks > 1
      ? try TensorParallelOverlap(group: tpGroup, rows: B * T, columns: C, chunks: parallel.tpChunks, sequence: sequence) : nil
    columnLinear = ColumnParallelLinear(tp: tp, pool: pool, sequence: sequence, overlap: overlap)
    rowLinear = RowParallelLinear(tp: tp, pool: pool, sequence: sequence, overlap: overlap)
    tensorParallelPieces = overlap.map { $0.rowStarts.count - 1 } ?? 1
  }

  /// The row chunks `--overlap-tp` pipelines the B·T rows in: at most the chunks asked for, each
  /// at least 64 rows (`TensorParallelOverlap.rowAlignment`); 1 without overlap.
  public private(set) var tensorParallelPieces = 1

  deinit {
    for buffer in [paramsMemory, gradsMemory] { Arena.deallocate(buffer, partition.paddedCount) }
    for buffer in [adamM, adamV] { Arena.deallocate(buffer, partition.shardCount) }
    Arena.deallocate(activationMemory, activationCount)
    inputs.deallocate(); targets.deallocate(); normScratch.deallocate()
  }

  /// Bytes of the parameter buffer (and of the gradient buffer, which has its length).
  public var parameterBytes: Int { partition.paddedCount * 4 }
  /// Bytes of the optimizer state: AdamW's two moment buffers.
  public var optimizerBytes: Int { 2 * partition.shardCount * 4 }
  /// Bytes of the activation arena.
  public var activationBytes: Int { activationCount * 4 }

  /// Layer `l`'s slices of the activations (a working layer's, for what is not kept per layer).
  @inline(__always)
  func layerActivations(_ l: Int) -> LayerActivations {
    let (C, BT, R) = (config.channels, B * T, rows)
    let (NH, CL, FL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal)
    let k = activationOptions.recompute == .full ? 0 : l  // the kept (or working) layer
    let a = activationOptions.recompute == .none ? l : 0  // its attention probabilities
    return LayerActivations(
      residual: l == 0 ? acts.encoded : acts.residual3 + (l - 1) * R * C,
      ln1: acts.ln1 + k * R * C, ln1Mean: acts.ln1Mean + k * R, ln1Rstd: acts.ln1Rstd + k * R,
      qkv: acts.qkv + k * BT * 3 * CL, atty: acts.atty + k * BT * CL, att: acts.att + a * B * NH * T * T,
      residual2: acts.residual2 + k * R * C,
      ln2: acts.ln2 + k * R * C, ln2Mean: acts.ln2Mean + k * R, ln2Rstd: acts.ln2Rstd + k * R,
      fch: acts.fch + k * BT * FL, fchGelu: acts.fchGelu + k * BT * FL,
      residual3: acts.residual3 + l * R * C)
  }

  // MARK: forward

  /// Forward pass over `inputs`/`targets`; returns this replica's mean loss.
  public func forward() -> Float {
    let (L, C, BT, R) = (config.numLayers, config.channels, B * T, rows)
    let VL = local.vocabLocal

    // vocab-parallel embedding (summed over TP; with sequence parallelism reduce-scattered onto
    // this rank's rows) + position embedding
    if let sequence {
      embeddingForward(sequence.partial, inputs, params.wte, BT, C, local.vocabStart, VL, pool: pool)
      tp.reduceScatterToSequenceParallelForward(acts.encoded, sequence.partial, R * C)
    } else {
      embeddingForward(acts.encoded, inputs, params.wte, BT, C, local.vocabStart, VL, pool: pool)
      tp.reduceEmbedding(acts.encoded, BT * C)
    }
    positionRowsForward(acts.encoded, params.wpe, firstRow, R, T, C, pool: pool)
    layernormForward(acts.ln1, acts.ln1Mean, acts.ln1Rstd, acts.encoded, params.ln1w, params.ln1b, R, C, pool: pool)

    for l in 0..<L { layerForward(l, through: .output) }
    // tied LM head (column-parallel over the vocabulary), then vocab-parallel cross-entropy
    columnLinear.forward(acts.logits, acts.lnf, params.wte, nil, BT, C, VL)
    crossEntropyLocalMax(acts.rowMax, acts.logits, BT, VL, local.vocabValid, pool: pool)
    tp.reduceLogitMax(acts.rowMax, BT)
    crossEntropyLocalSums(acts.sumExpAndTarget, acts.logits, acts.rowMax, targets, BT, VL, local.vocabValid,
                          local.vocabStart, pool: pool)
    tp.reduceSumExpAndTarget(acts.sumExpAndTarget, 2 * BT)
    return crossEntropyFinish(acts.losses, acts.rowMax, acts.sumExpAndTarget, BT)
  }

  /// Transformer layer `l` forward, from its LayerNorm'd input ln1 (written by the previous
  /// layer's last sweep, or after the embeddings) through `stage`. Linear layers and attention
  /// run on all B·T rows; LayerNorms and residual adds on this rank's R rows.
  func layerForward(_ l: Int, through stage: LayerStage) {
    let (L, C, BT, R) = (config.numLayers, config.channels, B * T, rows)
    let (NH, CL, FL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal)
    let layer = layerActivations(l)

    // attention: column-parallel QKV → local heads → row-parallel projection (bias deferred)
    columnLinear.forward(layer.qkv, layer.ln1, params.qkvw + l * 3 * CL * C, params.qkvb + l * 3 * CL, BT, C, 3 * CL)
    attentionForward(layer.atty, layer.att, layer.qkv, B, T, NH, config.headSize, pool: pool)
    rowLinear.forward(acts.proj, layer.atty, params.attprojw + l * C * CL, BT, CL, C)
    // residual2 = residual + attproj + bias; ln2 = LayerNorm(residual2)
    residualLayernormForward(layer.residual2, layer.ln2, layer.ln2Mean, layer.ln2Rstd, layer.residual, acts.proj,
                             params.attprojb + l * C, params.ln2w + l * C, params.ln2b + l * C, R, C, pool: pool)
    // MLP: column-parallel fc → GELU → row-parallel projection (bias deferred)
    columnLinear.forward(layer.fch, layer.ln2, params.fcw + l * FL * C, params.fcb + l * FL, BT, C, FL)
    geluForward(layer.fchGelu, layer.fch, BT * FL, pool: pool)
    if stage == .mlpActivation { return }
    rowLinear.forward(acts.proj, layer.fchGelu, params.fcprojw + l * C * FL, BT, FL, C)
    // residual3 = residual2 + fcproj + bias, then the next LayerNorm (layer l+1's ln1, or lnf)
    if l + 1 < L {
      let next = layerActivations(l + 1)
      residualLayernormForward(layer.residual3, next.ln1, next.ln1Mean, next.ln1Rstd, layer.residual2, acts.proj,
                               params.fcprojb + l * C, params.ln1w + (l + 1) * C, params.ln1b + (l + 1) * C,
                               R, C, pool: pool)
    } else {
      residualLayernormForward(layer.residual3, acts.lnf, acts.lnfMean, acts.lnfRstd, layer.residual2, acts.proj,
                               params.fcprojb + l * C, params.lnfw, params.lnfb, R, C, pool: pool)
    }
  }

  // MARK: backward

  /// Backward pass of the last forward; overwrites all of `grads` (each parameter's gradient has
  /// one producer, `wte` two: the LM head writes, the embedding adds). The loss is the mean over
  /// B·T positions of this replica.
  public func backward() {
    let (L, C, BT, R) = (config.numLayers, config.channels, B * T, rows)
    let (NH, CL, FL, VL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal, local.vocabLocal)
    let hs = config.headSize

    crossEntropyBackward(acts.logits, acts.rowMax, acts.sumExpAndTarget, targets, 1 / Float(BT), BT, VL,
                         local.vocabValid, local.vocabStart, pool: pool)
    // LM head: dlnf = dlogits · wte_local (summed over TP), dwte_local = dlogitsᵀ lnf
    columnLinear.backward(acts.dC, grads.wte, nil, acts.logits, acts.lnf, params.wte, BT, C, VL)
    let last = layerActivations(L - 1)
    // dresidual = ∂loss/∂residual3[L-1]; its column sums are the last MLP projection's bias grad
    layernormBackward(acts.dresidual, grads.lnfw, grads.lnfb, acts.dC, last.residual3, params.lnfw, acts.lnfMean,
                      acts.lnfRstd, R, C, accumulateInput: false, dinpColumnSums: grads.fcprojb + (L - 1) * C,
                      pool: pool)
    gradientBuckets?.ready(0)

    for l in stride(from: L - 1, through: 0, by: -1) {
      switch activationOptions.recompute {
      case .none: break
      case .selective: recomputeAttention(l)
      case .full: recomputeLayer(l)
      }
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
                        layer.ln2Mean, layer.ln2Rstd, R, C, dinpColumnSums: grads.attprojb + l * C, pool: pool)
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
                        layer.ln1Mean, layer.ln1Rstd, R, C,
                        dinpColumnSums: l > 0 ? grads.fcprojb + (l - 1) * C : nil, pool: pool)
      gradientBuckets?.ready(L - l)
    }
    if let sequence {
      // the embedding's reduce-scatter, backward: all-gather the rows for the vocab-parallel
      // scatter; the position embedding and every parameter used on the rows got this rank's
      // part of their gradient, summed over TP here
      tp.reduceScatterToSequenceParallelBackward(sequence.gathered, acts.dresidual, R * C)
      embeddingBackward(grads.wte, sequence.gathered, inputs, BT, C, local.vocabStart, VL, pool: pool)
      positionRowsBackward(grads.wpe, acts.dresidual, firstRow, R, T, C, pool: pool)
      // (the gradient buckets sum them slice by slice before reducing them over DP)
      if gradientBuckets?.sumsReplicatedGradients != true { reduceSequenceParallelGradients() }
    } else {
      embeddingBackward(grads.wte, acts.dresidual, inputs, BT, C, local.vocabStart, VL, pool: pool)
      positionBackward(grads.wpe, acts.dresidual, B, T, C, pool: pool)
    }
    gradientBuckets?.ready(L + 1)
  }
}
