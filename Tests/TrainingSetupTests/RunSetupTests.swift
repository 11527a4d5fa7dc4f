import CheckpointLayout
import Foundation
import TPEngine
import TrainingSetup
import XCTest

/// tptrain's set-up rules, called with plain flag values: no mpirun, no ranks.
final class RunSetupTests: XCTestCase {
  func setup(_ args: String...) throws -> RunSetup { try RunSetup.parse(args) }

  /// A checkpoint of the tiny preset at step 5 of 10 (B 4, T 32), as --resume would find it.
  func resumePoint(path: String = "ck/step_00000005", step: Int = 5) throws -> ResumePoint {
    let model = try GPTConfig.preset("tiny")
    let run = RunConfiguration(model: model, batch: 4, seq: 32, totalSteps: 10, optimizer: AdamWConfig(),
                               schedule: LRSchedule(), dataPath: "data/x.txt", dataTokens: 1000, seed: 7)
    let state = TrainingStateHeader(step: step, dataPosition: step, tp: 2, dp: 1, parameterCount: model.parameterCount, run: run)
    return ResumePoint(path: path, state: state)
  }

  func message(_ body: () throws -> Any) -> String {
    do { _ = try body(); return "" } catch { return "\(error)" }
  }

  // MARK: Parallel configuration

  /// Every feature flag is resolved once against the grid: on only where it does something, and
  /// the segment header's word says exactly that.
  func testTheParallelConfigurationIsResolvedAgainstTheGrid() throws {
    let all = try setup("--sequence-parallel", "--recompute", "selective", "--distributed-optimizer",
                        "--overlap-grad-reduce", "--bucket-mib", "0.5", "--overlap-tp", "--tp-chunks", "8")
    let settings = try all.settings(resumed: nil, config: try GPTConfig.preset("tiny"))
    let wide = try all.parallelConfig(settings: settings, tp: 2, dp: 2)
    XCTAssertEqual(wide.optimizerShards, 2)
    XCTAssertEqual(wide.gradientBucketBytes, 1 << 19)
    XCTAssertTrue(wide.overlapTP)
    XCTAssertEqual(wide.tpChunks, 8)
    XCTAssertEqual(wide.features.labels, ["SP", "DistOpt", "recompute=selective", "OverlapGrad", "OverlapTP"])
    // one rank per dimension: nothing to partition, reduce or pipeline
    let narrow = try all.parallelConfig(settings: settings, tp: 1, dp: 1)
    XCTAssertEqual(narrow.optimizerShards, 1)
    XCTAssertNil(narrow.gradientBucketBytes)
    XCTAssertFalse(narrow.overlapTP)
    XCTAssertEqual(narrow.tpChunks, 1)
    XCTAssertEqual(narrow.features.labels, ["SP", "recompute=selective"])
    // the plain default chunks and bucket
    let plain = try setup("--overlap-tp", "--overlap-grad-reduce").parallelConfig(settings: settings, tp: 2, dp: 2)
    XCTAssertEqual(plain.tpChunks, RunSetup.defaultTPChunks)
    XCTAssertEqual(plain.gradientBucketBytes, ParallelConfig.defaultBucketBytes)
    XCTAssertEqual(try setup().parallelConfig(settings: settings, tp: 2, dp: 2), ParallelConfig(tp: 2, dp: 2))
  }

  // MARK: Model

  func testDefaultModelIsTheSmallPresetAlsoWithExplicitSizes() throws {
    XCTAssertEqual(try setup().modelConfig(resumed: nil), try GPTConfig.preset("small"))
    var expected = try GPTConfig.preset("small")
    expected.numLayers = 3
    XCTAssertEqual(try setup("--layers", "3").modelConfig(resumed: nil), expected)
    XCTAssertEqual(try setup("--model", "tiny").modelConfig(resumed: nil), try GPTConfig.preset("tiny"))
  }

  /// --distributed-optimizer partitions over d DP ranks; at d = 1 it partitions nothing and says so.
  func testDistributedOptimizerShardsAndItsOneRankNote() throws {
    let on = try setup("--distributed-optimizer"), off = try setup()
    let settings = try on.settings(resumed: nil, config: try GPTConfig.preset("tiny"))
    func shards(_ s: RunSetup, _ dp: Int) throws -> Int { try s.parallelConfig(settings: settings, tp: 1, dp: dp).optimizerShards }
    XCTAssertEqual([try shards(on, 1), try shards(on, 2), try shards(on, 4)], [1, 2, 4])
    XCTAssertEqual([try shards(off, 1), try shards(off, 4)], [1, 1])
    XCTAssertEqual(on.noOpNotes(tp: 2, dp: 1),
                   ["--distributed-optimizer at dp 1 is a no-op: there is no other DP rank to share the optimizer state with"])
    XCTAssertEqual(on.noOpNotes(tp: 1, dp: 2), [])
    XCTAssertEqual(off.noOpNotes(tp: 1, dp: 1), [])
  }

  func testOverlapFlagsThatChangeNothingGetANote() throws {
    let both = try setup("--overlap-tp", "--overlap-grad-reduce", "--tp-chunks", "8", "--bucket-mib", "2")
    XCTAssertEqual(both.noOpNotes(tp: 2, dp: 2), [])
    XCTAssertEqual(both.noOpNotes(tp: 1, dp: 1),
                   ["--overlap-grad-reduce at dp 1 is a no-op: there is no data-parallel gradient reduction to overlap",
                    "--overlap-tp at tp 1 is a no-op: there is no tensor-parallel communication to overlap"])
    XCTAssertEqual(try setup("--tp-chunks", "8", "--bucket-mib", "2").noOpNotes(tp: 2, dp: 2),
                   ["--bucket-mib has no effect without --overlap-grad-reduce", "--tp-chunks has no effect without --overlap-tp"])
  }

  func testExplicitVocabIsPadded() throws {
    let c = try setup("--model", "tiny", "--vocab", "100").modelConfig(resumed: nil)
    XCTAssertEqual(c.vocabSize, 100)
    XCTAssertEqual(c.paddedVocabSize, GPTConfig.paddedVocab(for: 100))
  }

  func testResumeAndInitFromConflict() throws {
    let r = try resumePoint()
    let m = message { try self.setup("--init-from", "m.bin").modelConfig(resumed: r) }
    XCTAssertTrue(m.hasPrefix("give either --resume or --init-from, not both"), m)
  }

  func testModelAndInitFromConflict() throws {
    let m = message { try self.setup("--model", "tiny", "--init-from", "m.bin").modelConfig(resumed: nil) }
    XCTAssertEqual(m, "give either --model or --init-from, not both")
  }

  func testResumeTakesTheCheckpointsModelAndRejectsContradictions() throws {
    let r = try resumePoint()
    XCTAssertEqual(try setup().modelConfig(resumed: r), try GPTConfig.preset("tiny"))
    XCTAssertEqual(try setup("--model", "tiny").modelConfig(resumed: r), try GPTConfig.preset("tiny"))
    let preset = message { try self.setup("--model", "small").modelConfig(resumed: r) }
    XCTAssertTrue(preset.contains("not the --model small preset: drop --model to resume it"), preset)
    let sizes = message { try self.setup("--layers", "9").modelConfig(resumed: r) }
    XCTAssertTrue(sizes.contains("contradicts the flags (--layers 9 vs"), sizes)
  }

  func testUnknownPresetAndImpossibleSizes() throws {
    XCTAssertTrue(message { try self.setup("--model", "huge").modelConfig(resumed: nil) }.hasPrefix("unknown model preset 'huge'"))
    XCTAssertTrue(message { try self.setup("--heads", "5").modelConfig(resumed: nil) }.contains("is not divisible by heads 5"))
  }

  // MARK: Splits

  func testSplitsValidation() throws {
    let grid = try ParallelLayout(worldSize: 4, worldRank: 3, tp: 2, dp: nil)
    XCTAssertEqual(grid.dp, 2)
    XCTAssertEqual(grid.tpRank, 1)
    XCTAssertEqual(grid.dpRank, 1)
    XCTAssertThrowsError(try ParallelLayout(worldSize: 4, worldRank: 0, tp: 3, dp: nil))
    XCTAssertThrowsError(try ParallelLayout(worldSize: 4, worldRank: 0, tp: 2, dp: 3))
    var c = try GPTConfig.preset("tiny")
    c.numHeads = 3
    c.channels = 48
    let m = message { try ParallelLayout(worldSize: 2, worldRank: 0, tp: 2, dp: 1).validate(c) }
    XCTAssertTrue(m.hasPrefix("cannot split the model over tp=2: heads 3 % tp 2 = 1"), m)
  }

  func testActivationOptions() throws {
    let settings = try setup("--batch", "3", "--seq", "10").settings(resumed: nil, config: try GPTConfig.preset("tiny"))
    XCTAssertEqual(try setup().activationOptions(settings: settings, tp: 4), ActivationOptions())
    XCTAssertEqual(try setup("--sequence-parallel", "--recompute", "full").activationOptions(settings: settings, tp: 2),
                   ActivationOptions(sequenceParallel: true, recompute: .full))
    XCTAssertEqual(try setup("--recompute", "selective").activationOptions(settings: settings, tp: 4).recompute, .selective)
    // 30 rows split over 2 and 3 ranks, not over 4 (without sequence parallelism they need not split)
    XCTAssertNoThrow(try setup("--sequence-parallel").activationOptions(settings: settings, tp: 3))
    let m = message { try self.setup("--sequence-parallel").activationOptions(settings: settings, tp: 4) }
    XCTAssertTrue(m.hasPrefix("cannot split the token rows over tp=4 for --sequence-parallel: batch × seq = 3 × 10 = 30 is not divisible by 4"), m)
    XCTAssertEqual(message { try self.setup("--recompute", "all").activationOptions(settings: settings, tp: 1) },
                   "unknown --recompute 'all': use none, selective or full")
  }

  // MARK: Settings

  func testSettingsDefaults() throws {
    let s = try setup().settings(resumed: nil, config: try GPTConfig.preset("small"))
    XCTAssertEqual(s.batch, 8)
    XCTAssertEqual(s.seq, 64)
    XCTAssertEqual(s.steps, 20)
    XCTAssertEqual(s.seed, 1337)
    XCTAssertEqual(s.optimizer.learningRate, 3e-4)
    XCTAssertEqual(s.schedule.kind, .constant)
    XCTAssertEqual(s.schedule.minFraction, 0.1)
  }

  func testResumedSettingsComeFromTheCheckpoint() throws {
    let r = try resumePoint()
    let tiny = try GPTConfig.preset("tiny")
    let s = try setup().settings(resumed: r, config: tiny)
    XCTAssertEqual(s.batch, 4)
    XCTAssertEqual(s.seq, 32)
    XCTAssertEqual(s.steps, 10)
    XCTAssertEqual(s.seed, 7)
    XCTAssertEqual(try setup("--steps", "30").settings(resumed: r, config: tiny).steps, 30, "--steps may extend a resumed run")
    let clash = message { try self.setup("--batch", "8", "--lr", "0.001").settings(resumed: r, config: tiny) }
    XCTAssertTrue(clash.contains("was saved with other settings (--batch 8 vs 4, --lr 0.001 vs 0.0003)"), clash)
    let early = message { try self.setup("--steps", "3").settings(resumed: r, config: tiny) }
    XCTAssertEqual(early, "--steps 3 is before the checkpoint's step 5 (ck/step_00000005): give --steps ≥ 5")
  }

  func testSettingsChecks() throws {
    let tiny = try GPTConfig.preset("tiny")
    XCTAssertEqual(message { try self.setup("--lr-schedule", "linear").settings(resumed: nil, config: tiny) },
                   "unknown --lr-schedule 'linear': use constant or cosine")
    XCTAssertEqual(message { try self.setup("--batch", "0").settings(resumed: nil, config: tiny) },
                   "--batch, --seq must be ≥ 1 and --steps ≥ 0 (got 0, 64, 20)")
    let long = message { try self.setup("--seq", "\(tiny.maxSeqLen + 1)").settings(resumed: nil, config: tiny) }
    XCTAssertTrue(long.hasPrefix("--seq \(tiny.maxSeqLen + 1) is larger than the model's max-seq \(tiny.maxSeqLen)"), long)
    XCTAssertEqual(try setup("--lr-schedule", "cosine", "--warmup", "5").settings(resumed: nil, config: tiny).schedule.warmupSteps, 5)
  }

  func testCountChecks() throws {
    XCTAssertNoThrow(try setup().validateCounts())
    XCTAssertTrue(message { try self.setup("--threads", "0").validateCounts() }.hasPrefix("--threads must be ≥ 1 (got 0)"))
    // an absurd thread count is refused before any thread starts, with the bound and its reason
    let cap = RunSetup.maxThreadsPerCore * RunSetup.onlineCores()
    let absurd = message { try self.setup("--threads", "100000").validateCounts() }
    XCTAssertTrue(absurd.hasPrefix("--threads 100000 is more than 4 × the \(RunSetup.onlineCores()) cores of this node (\(cap))"), absurd)
    XCTAssertTrue(absurd.contains("give --threads ≤ \(cap)"), absurd)
    XCTAssertNoThrow(try setup("--threads", "\(cap)").validateCounts())
    XCTAssertEqual(message { try self.setup("--keep-checkpoints=-1").validateCounts() },
                   "--checkpoint-every and --keep-checkpoints must be ≥ 0 (got 0, -1)")
  }

  func testSimulatedNodesDivideTheWorld() throws {
    XCTAssertNoThrow(try setup("--simulate-nodes", "2").validateSimulatedNodes(worldSize: 4))
    XCTAssertNoThrow(try setup("--simulate-nodes", "1").validateSimulatedNodes(worldSize: 3))
    XCTAssertNoThrow(try setup().validateSimulatedNodes(worldSize: 3))
    XCTAssertEqual(message { try self.setup("--simulate-nodes", "3").validateSimulatedNodes(worldSize: 4) },
                   "--simulate-nodes 3 must divide the world size 4 (nodes are equal groups of contiguous ranks)")
  }

  // MARK: Numeric flags

  func testEveryNumericFlagIsRangeChecked() throws {
    // one case a line: the arguments, then the one line they must be refused with
    let refused = """
      --lr=-1  →  --lr must be a finite number > 0, not -1
      --lr nan  →  --lr must be a finite number > 0, not nan
      --lr inf  →  --lr must be a finite number > 0, not inf
      --beta1 1.5  →  --beta1 must be a finite number ≥ 0 and < 1, not 1.5
      --beta2 1  →  --beta2 must be a finite number ≥ 0 and < 1, not 1
      --eps 0  →  --eps must be a finite number > 0, not 0
      --weight-decay=-1  →  --weight-decay must be a finite number ≥ 0, not -1
      --warmup=-5  →  --warmup must be ≥ 0, not -5
      --grad-clip=-1  →  --grad-clip must be a finite number ≥ 0, not -1
      --lr-min-frac 5  →  --lr-min-frac must be a finite number between 0 and 1, not 5
      --steps -3  →  --steps must be ≥ 0, not -3
      --batch 0  →  --batch must be ≥ 1, not 0
      --seq 0  →  --seq must be ≥ 1, not 0
      --layers 0  →  --layers must be ≥ 1, not 0
      --tp 0  →  --tp must be ≥ 1, not 0
      --checkpoint-every -2  →  --checkpoint-every must be ≥ 0, not -2
      --shard-stats-every -1  →  --shard-stats-every must be ≥ 0, not -1
      --threads 0  →  --threads must be ≥ 1, not 0
      --simulate-nodes 0  →  --simulate-nodes must be ≥ 1, not 0
      """
    for parts in refused.split(separator: "\n").map({ $0.components(separatedBy: "  →  ") }) {
      let args = parts[0].split(separator: " ").map(String.init)
      let parsed = try RunSetup.parse(RunSetup.joiningNegativeNumbers(args))
      XCTAssertEqual(message { try parsed.validateNumbers() }, parts[1], "\(args)")
    }
    XCTAssertNoThrow(try setup("--lr", "1e-3", "--beta1", "0", "--lr-min-frac", "1", "--steps", "0", "--grad-clip", "0").validateNumbers())
    XCTAssertNoThrow(try setup().validateNumbers())
  }

  func testNegativeNumbersAfterASpaceAreJoinedToTheirOption() throws {
    XCTAssertEqual(RunSetup.joiningNegativeNumbers(["--steps", "-3", "--lr", "1e-3", "-b", "4", "--quiet", "--warmup", "-inf", "-t", "-2"]),
                   ["--steps=-3", "--lr", "1e-3", "-b", "4", "--quiet", "--warmup=-inf", "-t=-2"])
    XCTAssertEqual(try RunSetup.parse(RunSetup.joiningNegativeNumbers(["-b", "-3"])).batch, -3)
    // not numbers: left for the parser (an option after an option stays an option)
    XCTAssertEqual(RunSetup.joiningNegativeNumbers(["--data", "--quiet", "--job", "-x"]), ["--data", "--quiet", "--job", "-x"])
    XCTAssertEqual(try RunSetup.parse(RunSetup.joiningNegativeNumbers(["--steps", "-3"])).steps, -3)
  }

  func testNonFinitePolicy() throws {
    let settings = try setup().settings(resumed: nil, config: try GPTConfig.preset("tiny"))
    XCTAssertEqual(try setup().trainingOptions(settings: settings, resumed: nil).onNonFinite, .stop)
    let skip = try setup("--on-nonfinite", "skip-step", "--fault-nonfinite-at", "3")
    XCTAssertEqual(skip.trainingOptions(settings: settings, resumed: nil).onNonFinite, .skipStep)
    XCTAssertEqual(skip.trainingOptions(settings: settings, resumed: nil).faultNonFiniteAtStep, 3)
    XCTAssertThrowsError(try setup("--on-nonfinite", "ignore"))
  }

  // MARK: Checkpoints and files

  func testCheckpointDirectory() throws {
    XCTAssertEqual(try setup().checkpointDirectory(resumed: nil), "checkpoints")
    XCTAssertEqual(try setup().checkpointDirectory(resumed: try resumePoint(path: "runs/a/step_00000005")), "runs/a")
    XCTAssertEqual(try setup().checkpointDirectory(resumed: try resumePoint(path: "step_00000005")), ".")
    XCTAssertEqual(try setup("--checkpoint-dir", "ck2").checkpointDirectory(resumed: try resumePoint()), "ck2")
  }

  func testTrainingOptions() throws {
    let r = try resumePoint()
    let s = try setup("--checkpoint-every", "5", "--shard-stats-every=-3", "--quiet")
    let o = s.trainingOptions(settings: try s.settings(resumed: r, config: try GPTConfig.preset("tiny")), resumed: r)
    XCTAssertEqual(o.startStep, 5)
    XCTAssertEqual(o.steps, 10)
    XCTAssertEqual(o.checkpointEvery, 5)
    XCTAssertEqual(o.keepCheckpoints, 3)
    // absolute, against the working directory (the events and the resume hint name it so)
    XCTAssertEqual(o.checkpointDir, FileManager.default.currentDirectoryPath + "/ck")
    XCTAssertEqual(o.shardStatsEvery, 0)
    XCTAssertFalse(o.printSteps)
  }

  func testResumedDataMustMatch() throws {
    let r = try resumePoint()
    XCTAssertNoThrow(try setup().checkData(path: "d", tokens: 1000, resumed: r))
    XCTAssertNoThrow(try setup().checkData(path: "d", tokens: 5, resumed: nil))
    XCTAssertEqual(message { try self.setup().checkData(path: "d", tokens: 5, resumed: r) },
                   "data d has 5 tokens but checkpoint ck/step_00000005 was trained on data/x.txt with 1000: pass the same --data")
    XCTAssertEqual(try setup("--data", "mine.txt").dataPath(resumed: r), "mine.txt")
  }

  func testOutputChecks() throws {
    XCTAssertNoThrow(try setup("--log", NSTemporaryDirectory() + "x.jsonl").checkOutputs())
    XCTAssertEqual(message { try self.setup("--save", "/nonexistent-dir/m.bin").checkOutputs() },
                   "--save /nonexistent-dir/m.bin: directory /nonexistent-dir does not exist or is not writable")
    let dir = NSTemporaryDirectory() + "tptrain-outputs-\(getpid())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    XCTAssertEqual(message { try self.setup("--save", dir).checkOutputs() }, "--save \(dir) is a directory: name a file, e.g. \(dir)/model.bin")
    XCTAssertEqual(message { try self.setup("--log", dir).checkOutputs() }, "--log \(dir) is a directory: name a file, e.g. \(dir)/train.jsonl")
    XCTAssertEqual(mkfifo(dir + "/fifo", 0o600), 0)
    XCTAssertEqual(message { try self.setup("--save", dir + "/fifo").checkOutputs() },
                   "--save \(dir)/fifo is not a regular file or a character device (a FIFO, socket or block device): name a file")
    // links are followed (relative to their directory; a dangling one names the file to create)
    XCTAssertEqual(symlink("sub/model.bin", dir + "/link.bin"), 0)
    XCTAssertEqual(try ModelFileTarget(dir + "/link.bin"), try ModelFileTarget(dir + "/sub/model.bin"))
    XCTAssertEqual(try ModelFileTarget(dir + "/link.bin").path, dir + "/sub/model.bin")
    XCTAssertEqual(message { try self.setup("--save", dir + "/link.bin").checkOutputs() },
                   "--save \(dir)/link.bin: directory \(dir)/sub does not exist or is not writable")
    XCTAssertEqual(symlink(dir + "/link.bin", dir + "/link2.bin"), 0)
    XCTAssertEqual(try ModelFileTarget(dir + "/link2.bin").path, dir + "/sub/model.bin")
    XCTAssertEqual(symlink("loop", dir + "/loop"), 0)
    XCTAssertTrue(message { try self.setup("--save", dir + "/loop").checkOutputs() }.hasSuffix("too many symbolic links or an unreadable one; name the file itself"))
    let null = try ModelFileTarget("/dev/null")
    XCTAssertTrue(null.isDevice)
    XCTAssertEqual(null.path, "/dev/null")
    XCTAssertNoThrow(try setup("--save", "/dev/null").checkOutputs())
    XCTAssertNoThrow(try setup("--checkpoint-dir", "/nonexistent-dir/ck").checkOutputs(), "checked only with --checkpoint-every")
    XCTAssertTrue(message { try self.setup("--checkpoint-dir", "/nonexistent-dir/ck", "--checkpoint-every", "2").checkOutputs() }
      .hasPrefix("--checkpoint-dir /nonexistent-dir/ck: not a writable directory"))
  }
}
