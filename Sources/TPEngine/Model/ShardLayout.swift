// How every parameter tensor is divided among the TP ranks: JobSchema's GPT-2 layout (one
// description for the engine, the checkpoints, the telemetry segment and the tests), for a
// GPTConfig.

import JobSchema

extension ShardedTensor {
  /// The 16 GPT-2 parameter tensors in llm.c checkpoint order, split over `tp` ranks.
  public static func gpt2Layout(_ c: GPTConfig, tp: Int) -> [ShardedTensor] {
    gpt2Layout(layers: c.numLayers, heads: c.numHeads, channels: c.channels, paddedVocab: c.paddedVocabSize,
               maxSeq: c.maxSeqLen, tp: tp)
  }
}
