// The tensor-parallel GPT-2 of one rank: parameter shards, activations and the
// forward/backward passes. Column-parallel: QKV, MLP fc. Row-parallel: attention projection,
// MLP projection. Vocab-parallel: token embedding and the tied LM head + cross-entropy.

import Glibc
import TPComm

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

  init(base: FloatPtr, sizes s: [Int]) {
    var p = base
    func next(_ i: Int) -> FloatPtr { defer { p += s[i] }; return p }
    wte = next(0); wpe = next(1); ln1w = next(2); ln1b = next(3); qkvw = next(4); qkvb = next(5)
    attprojw = next(6); attprojb = next(7); ln2w = next(8); ln2b = next(9); fcw = next(10)
    fcb = next(11); fcprojw = next(12); fcprojb = next(13); lnfw = next(14); lnfb = next(15)
  }
}

/// Activations of one forward pass, kept for backward (local sizes).
struct Activations {
  var encoded: FloatPtr  // (B,T,C)
  var ln1: FloatPtr  // (L,B,T,C)
  var ln1Mean: FloatPtr  // (L,B,T)
  var ln1Rstd: FloatPtr  // (L,B,T)
  var qkv: FloatPtr  // (L,B,T,3·C/t)
  var atty: FloatPtr  // (L,B,T,C/t)
  var att: FloatPtr  // (L,B,H/t,T,T)
  var residual2: FloatPtr  // (L,B,T,C)
  var ln2: FloatPtr  // (L,B,T,C)
  var ln2Mean: FloatPtr  // (L,B,T)
  var ln2Rstd: FloatPtr  // (L,B,T)
  var fch: FloatPtr  // (L,B,T,4C/t)
  var fchGelu: FloatPtr  // (L,B,T,4C/t)
  var residual3: FloatPtr  // (L,B,T,C)
  var proj: FloatPtr  // (B,T,C) a row-parallel block's partial output, all-reduced in place;
                      // consumed at once, so one buffer serves every projection of every layer
  var lnf: FloatPtr  // (B,T,C)
  var lnfMean: FloatPtr  // (B,T)
  var lnfRstd: FloatPtr  // (B,T)
  var logits: FloatPtr  // (B,T,Vp/t); holds dlogits after backward starts
  var ce: CrossEntropyBuffers
  // backward scratch
  var dresidual: FloatPtr  // (B,T,C)
  var dC: FloatPtr  // (B,T,C)
  var dqkv: FloatPtr  // (B,T,3·C/t)
  var datty: FloatPtr  // (B,T,C/t)
  var dfch: FloatPtr  // (B,T,4C/t)
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

  /// Parameter, gradient and AdamW moment buffers; all four share `localSizes` offsets.
  public let params: FloatPtr
  public let grads: FloatPtr
  public let adamM: FloatPtr
  public let adamV: FloatPtr
  public let p: ParameterViews
  public let g: ParameterViews
  /// Per-tensor Σg² scratch for `gradientNorm` (one double per local tensor).
  let normScratch: UnsafeMutablePointer<Double>

  /// Token ids for the current batch: inputs (B,T) and targets (B,T).
  public let inputs: UnsafeMutablePointer<Int32>
  public let targets: UnsafeMutablePointer<Int32>

  var a: Activations
  private let activationBase: FloatPtr
  public let activationCount: Int
  let tp: TensorParallelMappings
  /// The rank's threads for the work between GEMMs (one: everything on the calling thread).
  public let pool: WorkerPool

  /// Per-rank index range of parameters that are replicated over TP (counted once in norms).
  public let replicatedMask: [Bool]

  /// `ranksOnNode` ranks share this node's memory (each holds a similar shard); the constructor
  /// refuses, with one line, a model they cannot hold together. `threads` is the rank's share
  /// of cores: GEMMs use them through OpenBLAS, everything else through `pool`.
  public init(config: GPTConfig, local: LocalShape, batch B: Int, seq T: Int, tpGroup: Communicator,
              ranksOnNode: Int = 1, threads: Int = 1) throws {
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
    let (L, C, BT) = (config.numLayers, config.channels, B * T)
    let (NH, CL, FL, VL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal, local.vocabLocal)
    let sizes: [Int] = [
      BT * C,  // encoded
      L * BT * C, L * BT, L * BT,  // ln1
      L * BT * 3 * CL, L * BT * CL, L * B * NH * T * T,  // qkv, atty, att
      L * BT * C,  // residual2
      L * BT * C, L * BT, L * BT,  // ln2
      L * BT * FL, L * BT * FL,  // fch, fchGelu
      L * BT * C, BT * C,  // residual3, proj
      BT * C, BT, BT,  // lnf
      BT * VL,  // logits
      BT, 2 * BT, BT,  // ce
      BT * C, BT * C, BT * 3 * CL, BT * CL, BT * FL,  // backward scratch
    ]
    activationCount = sizes.reduce(0, +)
    // refuse up front what this node cannot hold, rather than being killed while touching pages
    let need = 4 * (4 * numLocalParameters + activationCount)
    if let available = Arena.availableBytes(), need * max(1, ranksOnNode) > available {
      func gib(_ b: Int) -> String { String(format: "%.2f GiB", Double(b) / Double(1 << 30)) }
      let who = ranksOnNode > 1 ? "\(ranksOnNode) ranks on this node need \(ranksOnNode) × " : "this rank needs "
      throw EngineError("\(who)\(gib(need)) (parameters, gradients and AdamW moments \(gib(16 * numLocalParameters)), activations \(gib(4 * activationCount))) but the node has \(gib(available)) available; use a smaller model, batch or sequence length, or spread the ranks over more nodes")
    }
    let n = numLocalParameters
    params = try Arena.allocate(n, "parameters")
    grads = try Arena.allocate(n, "gradients")
    adamM = try Arena.allocate(n, "AdamW first moments")
    adamV = try Arena.allocate(n, "AdamW second moments")
    params.initialize(repeating: 0, count: n)
    grads.initialize(repeating: 0, count: n)
    adamM.initialize(repeating: 0, count: n)
    adamV.initialize(repeating: 0, count: n)
    // per thread (the calling one included): attention backward's T·T, LayerNorm backward's 3·C
    // column sums, 3 doubles per tensor for AdamW and the gradient norm
    pool = WorkerPool(threads: threads, scratchFloats: max(T * T, 3 * C, 6 * localSizes.count))
    normScratch = .allocate(capacity: localSizes.count)
    normScratch.initialize(repeating: 0, count: localSizes.count)
    p = ParameterViews(base: params, sizes: localSizes)
    g = ParameterViews(base: grads, sizes: localSizes)
    inputs = .allocate(capacity: B * T)
    targets = .allocate(capacity: B * T)
    inputs.initialize(repeating: 0, count: B * T)
    targets.initialize(repeating: 0, count: B * T)

    activationBase = try Arena.allocate(activationCount, "activations")
    activationBase.initialize(repeating: 0, count: activationCount)
    var q = activationBase
    var i = 0
    func next() -> FloatPtr { defer { q += sizes[i]; i += 1 }; return q }
    a = Activations(
      encoded: next(), ln1: next(), ln1Mean: next(), ln1Rstd: next(), qkv: next(), atty: next(),
      att: next(), residual2: next(), ln2: next(), ln2Mean: next(), ln2Rstd: next(),
      fch: next(), fchGelu: next(), residual3: next(), proj: next(), lnf: next(), lnfMean: next(),
      lnfRstd: next(), logits: next(),
      ce: CrossEntropyBuffers(rowMax: next(), packed: next(), losses: next()),
      dresidual: next(), dC: next(), dqkv: next(), datty: next(), dfch: next())
  }

  deinit {
    for buffer in [params, grads, adamM, adamV] { Arena.deallocate(buffer, numLocalParameters) }
    Arena.deallocate(activationBase, activationCount)
    inputs.deallocate(); targets.deallocate(); normScratch.deallocate()
  }

  public var parameterBytes: Int { numLocalParameters * 4 }
  public var activationBytes: Int { activationCount * 4 }

  /// Offset of tensor `i` in the flat local buffers.
  public func localOffset(ofTensor i: Int) -> Int { localSizes[..<i].reduce(0, +) }

  /// Layer `l`'s slices of the activations: its input residual (the embeddings for layer 0),
  /// ln1, qkv, atty, att, residual2, ln2, fch, fchGelu and its output residual3.
  @inline(__always)
  func layerActivations(_ l: Int) -> (FloatPtr, FloatPtr, FloatPtr, FloatPtr, FloatPtr, FloatPtr, FloatPtr,
                                       FloatPtr, FloatPtr, FloatPtr) {
    let (C, BT) = (config.channels, B * T)
    let (NH, CL, FL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal)
    return (l == 0 ? a.encoded : a.residual3 + (l - 1) * BT * C, a.ln1 + l * BT * C, a.qkv + l * BT * 3 * CL,
            a.atty + l * BT * CL, a.att + l * B * NH * T * T, a.residual2 + l * BT * C, a.ln2 + l * BT * C,
            a.fch + l * BT * FL, a.fchGelu + l * BT * FL, a.residual3 + l * BT * C)
  }

  // MARK: forward

  /// Forward pass over `inputs`/`targets`; returns this replica's mean loss.
  public func forward() -> Float {
    let (L, C, BT) = (config.numLayers, config.channels, B * T)
    let (NH, CL, FL, VL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal, local.vocabLocal)
    let hs = config.headSize

    // vocab-parallel embedding + position embedding
    embeddingForward(a.encoded, inputs, p.wte, BT, C, local.vocabStart, VL, pool: pool)
    tp.reduceEmbedding(a.encoded, BT * C)
    positionForward(a.encoded, p.wpe, B, T, C, pool: pool)
    layernormForward(a.ln1, a.ln1Mean, a.ln1Rstd, a.encoded, p.ln1w, p.ln1b, BT, C, pool: pool)

    for l in 0..<L {
      let (residual, ln1, qkv, atty, att, residual2, ln2, fch, fchGelu, residual3) = layerActivations(l)

      // ln1 = LayerNorm(residual) was written by the previous layer's last sweep (or above)
      // attention: column-parallel QKV (f) → local heads → row-parallel projection (g) + bias
      tp.copyToTensorParallelForward(ln1, BT * C)
      matmulForward(qkv, ln1, p.qkvw + l * 3 * CL * C, p.qkvb + l * 3 * CL, BT, C, 3 * CL, pool: pool)
      attentionForward(atty, att, qkv, B, T, NH, hs, pool: pool)
      matmulForward(a.proj, atty, p.attprojw + l * C * CL, nil, BT, CL, C)
      tp.reduceFromTensorParallelForward(a.proj, BT * C)
      // residual2 = residual + attproj + bias; ln2 = LayerNorm(residual2)
      residualLayernormForward(residual2, ln2, a.ln2Mean + l * BT, a.ln2Rstd + l * BT, residual, a.proj,
                               p.attprojb + l * C, p.ln2w + l * C, p.ln2b + l * C, BT, C, pool: pool)
      // MLP: column-parallel fc (f) → GELU → row-parallel projection (g) + bias
      tp.copyToTensorParallelForward(ln2, BT * C)
      matmulForward(fch, ln2, p.fcw + l * FL * C, p.fcb + l * FL, BT, C, FL, pool: pool)
      geluForward(fchGelu, fch, BT * FL, pool: pool)
      matmulForward(a.proj, fchGelu, p.fcprojw + l * C * FL, nil, BT, FL, C)
      tp.reduceFromTensorParallelForward(a.proj, BT * C)
      // residual3 = residual2 + fcproj + bias, then the next LayerNorm (layer l+1's ln1, or lnf)
      if l + 1 < L {
        residualLayernormForward(residual3, ln1 + BT * C, a.ln1Mean + (l + 1) * BT, a.ln1Rstd + (l + 1) * BT,
                                 residual2, a.proj, p.fcprojb + l * C, p.ln1w + (l + 1) * C,
                                 p.ln1b + (l + 1) * C, BT, C, pool: pool)
      } else {
        residualLayernormForward(residual3, a.lnf, a.lnfMean, a.lnfRstd, residual2, a.proj,
                                 p.fcprojb + l * C, p.lnfw, p.lnfb, BT, C, pool: pool)
      }
    }
    // tied LM head, vocab-parallel (f before it), then vocab-parallel cross-entropy
    tp.copyToTensorParallelForward(a.lnf, BT * C)
    matmulForward(a.logits, a.lnf, p.wte, nil, BT, C, VL)
    crossEntropyLocalMax(a.ce.rowMax, a.logits, BT, VL, local.vocabValid, pool: pool)
    tp.reduceLogitMax(a.ce.rowMax, BT)
    crossEntropyLocalSums(a.ce.packed, a.logits, a.ce.rowMax, targets, BT, VL, local.vocabValid, local.vocabStart,
                          pool: pool)
    tp.reduceSumExpAndTarget(a.ce.packed, 2 * BT)
    return crossEntropyFinish(a.ce.losses, a.ce.rowMax, a.ce.packed, BT)
  }

  /// Per-position losses of the last forward pass (B·T).
  public var positionLosses: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: a.ce.losses, count: B * T) }

  // MARK: backward

  /// Backward pass of the last forward; overwrites all of `grads` (each parameter's gradient has
  /// one producer, `wte` two: the LM head writes, the embedding adds). The loss is the mean over
  /// B·T positions of this replica.
  public func backward() {
    let (L, C, BT) = (config.numLayers, config.channels, B * T)
    let (NH, CL, FL, VL) = (local.headsLocal, local.channelsLocal, local.hiddenLocal, local.vocabLocal)
    let hs = config.headSize

    crossEntropyBackward(a.logits, a.ce.rowMax, a.ce.packed, targets, 1 / Float(BT), BT, VL,
                         local.vocabValid, local.vocabStart, pool: pool)
    // LM head: dlnf = dlogits · wte_local (partial), dwte_local = dlogitsᵀ lnf; f backward
    matmulBackward(a.dC, g.wte, nil, a.logits, a.lnf, p.wte, BT, C, VL)
    tp.copyToTensorParallelBackward(a.dC, BT * C)
    let last = a.residual3 + (L - 1) * BT * C
    // dresidual = ∂loss/∂residual3[L-1]; its column sums are the last MLP projection's bias grad
    layernormBackward(a.dresidual, g.lnfw, g.lnfb, a.dC, last, p.lnfw, a.lnfMean, a.lnfRstd, BT, C,
                      accumulateInput: false, dinpColumnSums: g.fcprojb + (L - 1) * C, pool: pool)

    for l in stride(from: L - 1, through: 0, by: -1) {
      let (residual, ln1, qkv, atty, att, residual2, ln2, fch, fchGelu, _) = layerActivations(l)
      let dres = a.dresidual  // ∂loss/∂residual3 on entry, ∂loss/∂residual on exit

      // MLP projection (row-parallel; g backward = identity). Its bias gradient (Σ dres) was
      // produced by the LayerNorm backward that finished dres.
      tp.reduceFromTensorParallelBackward(dres, BT * C)
      matmulBackward(a.dfch, g.fcprojw + l * C * FL, nil, dres, fchGelu, p.fcprojw + l * C * FL, BT, FL, C)
      geluBiasBackward(a.dfch, g.fcb + l * FL, fch, BT, FL, pool: pool)
      matmulBackward(a.dC, g.fcw + l * FL * C, nil, a.dfch, ln2, p.fcw + l * FL * C, BT, C, FL)
      tp.copyToTensorParallelBackward(a.dC, BT * C)
      layernormBackward(dres, g.ln2w + l * C, g.ln2b + l * C, a.dC, residual2, p.ln2w + l * C,
                        a.ln2Mean + l * BT, a.ln2Rstd + l * BT, BT, C, dinpColumnSums: g.attprojb + l * C, pool: pool)
      // attention projection (row-parallel), attention, QKV (column-parallel)
      tp.reduceFromTensorParallelBackward(dres, BT * C)
      matmulBackward(a.datty, g.attprojw + l * C * CL, nil, dres, atty, p.attprojw + l * C * CL, BT, CL, C)
      attentionBackward(a.dqkv, pool.scratch(0), a.datty, qkv, att, B, T, NH, hs, pool: pool)
      matmulBackward(a.dC, g.qkvw + l * 3 * CL * C, g.qkvb + l * 3 * CL, a.dqkv, ln1, p.qkvw + l * 3 * CL * C,
                     BT, C, 3 * CL, pool: pool)
      tp.copyToTensorParallelBackward(a.dC, BT * C)
      // dres becomes ∂loss/∂residual: for l > 0 that is residual3[l-1], the output of the
      // previous layer's MLP projection, whose bias gradient is its column sums
      layernormBackward(dres, g.ln1w + l * C, g.ln1b + l * C, a.dC, residual, p.ln1w + l * C,
                        a.ln1Mean + l * BT, a.ln1Rstd + l * BT, BT, C,
                        dinpColumnSums: l > 0 ? g.fcprojb + (l - 1) * C : nil, pool: pool)
    }
    embeddingBackward(g.wte, a.dresidual, inputs, BT, C, local.vocabStart, VL, pool: pool)
    positionBackward(g.wpe, a.dresidual, B, T, C, pool: pool)
  }
}
