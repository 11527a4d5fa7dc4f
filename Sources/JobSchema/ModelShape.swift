/// The GPT model's dimensions and the batch shape of a run: what a checkpoint records for an
/// exact resume and what the telemetry segment's header publishes.
public struct ModelShape: Codable, Sendable, Equatable {
  /// Transformer blocks L.
  public var layers: Int
  /// Attention heads H.
  public var heads: Int
  /// Embedding width C.
  public var channels: Int
  /// Vocabulary size V.
  public var vocab: Int
  /// Vocabulary padded for sharding Vp.
  public var paddedVocab: Int
  /// Maximum sequence length (positional table rows).
  public var maxSeq: Int
  /// Micro-batch B per data-parallel replica.
  public var batch: Int
  /// Sequence length T used in training.
  public var seq: Int

  /// Creates a shape.
  public init(layers: Int, heads: Int, channels: Int, vocab: Int, paddedVocab: Int, maxSeq: Int, batch: Int, seq: Int) {
    self.layers = layers
    self.heads = heads
    self.channels = channels
    self.vocab = vocab
    self.paddedVocab = paddedVocab
    self.maxSeq = maxSeq
    self.batch = batch
    self.seq = seq
  }
}

/// The one way every screen and command writes a job's grid: `t2×d1` (t tensor-parallel ranks
/// × d data-parallel replicas), with `x` where only ASCII is drawn.
public enum GridNotation {
  /// "t2×d1".
  public static func text(tp: Int, dp: Int, times: String = "×") -> String { "t\(tp)\(times)d\(dp)" }
}
