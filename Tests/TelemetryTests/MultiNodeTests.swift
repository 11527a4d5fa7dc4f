import Foundation
import Glibc
import JobSchema
import TestSupport
import XCTest

@testable import Telemetry

/// A job on two nodes, simulated on this machine (`tptrain --simulate-nodes 2`: ranks 0–1 are
/// node 0 with the default namespace, ranks 2–3 node 1 with its own segment in namespace
/// `node1`): the default namespace's segment shows every rank with every record, control from
/// either node acts on the whole job at one step boundary, and a node that stops reporting is
/// marked lost. Real mpirun ranks; skipped (failed under CI=true) without mpirun or the binaries.
final class MultiNodeTests: XCTestCase {
  private var checkpointDir: URL!

  override func setUp() {
    checkpointDir = FileManager.default.temporaryDirectory.appendingPathComponent("tptop-nodes-ck-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
  }

  override func tearDown() { try? FileManager.default.removeItem(at: checkpointDir) }

  private func tools() throws -> (mpirun: String, tptrain: String, tptop: String) {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    guard let mpirun = path.split(separator: ":").map({ "\($0)/mpirun" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
    else { throw MissingTool.error("mpirun (make test installs openmpi-bin)") }
    let tptrain = ToolPaths.buildDir.appendingPathComponent("tptrain").path
    guard FileManager.default.isExecutableFile(atPath: tptrain) else { throw MissingTool.error("the tptrain executable next to the tests (swift build --product tptrain)") }
    guard let tptop = ToolPaths.debug else { throw MissingTool.error("the tptop executable next to the tests (swift build --product tptop)") }
    return (mpirun, tptrain, tptop)
  }

  /// Starts `mpirun -np 4 tptrain --model tiny --simulate-nodes 2 ...` for job `job`; both
  /// namespaces' segments are removed when the test ends.
  private func launch(_ job: String, tp: Int, steps: Int, extra: [String] = []) throws -> Process {
    let (mpirun, tptrain, _) = try tools()
    addTeardownBlock {
      removeJob(job)
      shm_unlink("/tptop@node1." + job)
    }
    let p = try startTool(mpirun, [
      "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "4", tptrain, "--model", "tiny", "--tp", "\(tp)", "--batch", "2",
      "--seq", "16", "--steps", "\(steps)", "--job", job, "--quiet", "--threads", "1", "--simulate-nodes", "2",
      "--checkpoint-dir", checkpointDir.path,
    ] + extra)
    addTeardownBlock { if p.isRunning { p.terminate() } }
    return p
  }

  /// A reader of `job`'s segment in namespace `namespace`.
  private func reader(_ job: String, namespace: String?) throws -> JobReader {
    try JobReader(job: job, in: SegmentSpace(namespace: namespace))
  }

  /// `tptop ls ARGS`'s row for `job` ("" when absent).
  private func lsRow(_ job: String, _ args: [String] = []) throws -> String {
    let r = try runTool(try tools().tptop, ["ls"] + args)
    XCTAssertEqual(r.status, 0, r.stderr)
    return r.stdout.split(separator: "\n").first { $0.hasPrefix(job + " ") }.map(String.init) ?? ""
  }

  /// Runs `steps` steps at t = `tp` on two simulated nodes and checks every rank's records in the
  /// default namespace against an independent source: node 1's own segment.
  private func checkForwardedRun(tp: Int, steps: Int) throws {
    let job = uniqueJob("nodes-t\(tp)")
    let p = try launch(job, tp: tp, steps: steps, extra: ["--shard-stats-every", "3"])
    XCTAssertTrue(eventually(120) { !p.isRunning })
    XCTAssertEqual(p.terminationStatus, 0)

    let node0 = try reader(job, namespace: nil)
    XCTAssertEqual(node0.info.worldSize, 4)
    XCTAssertEqual(node0.phase(), .finished)
    let headers = node0.ranks()
    XCTAssertEqual(headers.map(\.attached), [true, true, true, true])
    XCTAssertEqual(headers.map(\.state), Array(repeating: .finished, count: 4))
    XCTAssertEqual(headers.map(\.node), [0, 0, 1, 1])
    XCTAssertEqual(headers.map(\.forwarded), [false, false, true, true])
    XCTAssertEqual(headers.map(\.lastStep), Array(repeating: steps, count: 4))
    for h in headers { XCTAssertFalse(h.host.isEmpty) }
    // ranks 2 and 3 are other processes than the forwarder, and their pids are theirs
    XCTAssertEqual(Set(headers.map(\.pid)).count, 4)

    let polls = node0.poll()
    for poll in polls {
      XCTAssertEqual(poll.steps.map(\.step), Array(1...steps), "rank \(poll.rank)")
      XCTAssertEqual(poll.lost, 0)
      XCTAssertEqual(poll.corrupt, 0)
      XCTAssertEqual(poll.steps.map(\.rank), Array(repeating: poll.rank, count: steps))
      XCTAssertEqual(poll.tensorStats.map(\.step), polls[0].tensorStats.map(\.step), "rank \(poll.rank)")
    }
    // the loss is global: the same on every rank, forwarded or not
    for poll in polls { XCTAssertEqual(poll.steps.map(\.loss), polls[0].steps.map(\.loss), "rank \(poll.rank)") }

    // node 1's own segment holds ranks 2 and 3 only; what reached node 0 is exactly what they wrote
    let node1 = try reader(job, namespace: "node1")
    let own = node1.ranks()
    XCTAssertEqual(own.map(\.attached), [false, false, true, true])
    XCTAssertEqual(own.map(\.node), [0, 0, 1, 1], "node 1's segment records where the other ranks run")
    XCTAssertEqual(own.map(\.forwarded), [false, false, false, false])
    for r in [2, 3] {
      let source = node1.poll(rank: r)
      let forwarded = polls[r]
      XCTAssertEqual(forwarded.steps.map(\.metrics), source.steps.map(\.metrics), "rank \(r)")
      XCTAssertEqual(forwarded.events.map(\.kind), source.events.map(\.kind), "rank \(r)")
      XCTAssertEqual(forwarded.tensorStats.map(\.entries), source.tensorStats.map(\.entries), "rank \(r)")
      XCTAssertEqual(own[r].pid, headers[r].pid)
      // accounting: every record the rank published reached node 0 (none dropped or in flight)
      XCTAssertEqual(headers[r].sourceRecords, own[r].writeIndex, "rank \(r)")
      XCTAssertEqual(headers[r].forwardedRecords, own[r].writeIndex, "rank \(r)")
      XCTAssertEqual(headers[r].writeIndex, own[r].writeIndex, "rank \(r)")
      XCTAssertEqual(headers[r].neverForwarded, 0)
    }

    // ls in each namespace; watch in the default one joins all four ranks on every line
    let row = try lsRow(job)
    let cells = row.split(separator: " ").map(String.init)
    XCTAssertEqual(Array(cells.prefix(5)), [job, "finished", "4", "t\(tp)×d\(4 / tp)", "\(steps)/\(steps)"], row)
    XCTAssertEqual(cells[safe: 7], "2", "NODES: \(row)")
    XCTAssertTrue(try lsRow(job, ["--namespace", "node1"]).hasPrefix(job + " "))
    XCTAssertEqual(try lsRow(job, ["--namespace", "node7"]), "")
    let watch = try runTool(try tools().tptop, ["watch", job, "--from-start"])
    XCTAssertEqual(watch.status, 0, watch.stderr)
    let stepLines = watch.stdout.split(separator: "\n").filter { $0.hasPrefix("step ") }
    XCTAssertEqual(stepLines.count, steps, watch.stdout)
    XCTAssertFalse(watch.stdout.contains("ranks)"), "a line missed a rank:\n\(watch.stdout)")
  }

  /// t=2 × d=2: each TP group lies within one node.
  /// Issue 24: each node's segment records the node of every rank it does not hold, so a view of
  /// one node names where the others run (four nodes of one rank each: node 2 sees 0, 1, 2, 3).
  func testANodesSegmentRecordsWhereTheOtherRanksRun() throws {
    let job = uniqueJob("nodes-map")
    addTeardownBlock { for n in [2, 3] { shm_unlink("/tptop@node\(n)." + job) } }
    let p = try launch(job, tp: 2, steps: 3, extra: ["--simulate-nodes", "4"])
    XCTAssertTrue(eventually(120) { !p.isRunning })
    XCTAssertEqual(p.terminationStatus, 0)
    let ranks = try reader(job, namespace: "node2").ranks()
    XCTAssertEqual(ranks.map(\.attached), [false, false, true, false])
    XCTAssertEqual(ranks.map(\.node), [0, 1, 2, 3])
  }

  func testTensorParallelGroupsWithinNodesForwardEveryRecord() throws { try checkForwardedRun(tp: 2, steps: 8) }

  /// t=4: the one TP group spans both nodes.
  func testTensorParallelGroupSpanningNodesForwardsEveryRecord() throws { try checkForwardedRun(tp: 4, steps: 6) }

  /// Pause and resume from node 0 and from node 1, a checkpoint asked for on node 1, then node 1
  /// stops reporting.
  func testControlFromEitherNodeAndALostNode() throws {
    let tptop = try tools().tptop
    let job = uniqueJob("nodes-ctl")
    let p = try launch(job, tp: 2, steps: 1_000_000)
    let node0 = try XCTUnwrap(attachWhenReady(job, timeout: 60))
    XCTAssertTrue(eventually(60) { node0.ranks().allSatisfy { $0.lastStep >= 3 } })
    let node1 = try reader(job, namespace: "node1")

    for (namespace, args) in [("node 0", [String]()), ("node 1", ["--namespace", "node1"])] {
      let paused = try runTool(tptop, args + ["pause", job])
      XCTAssertEqual(paused.status, 0, "pause from \(namespace): \(paused.stderr)")
      // all four ranks stop at one step boundary; node 1's own segment says the same
      XCTAssertTrue(eventually(20) { node0.ranks().allSatisfy { $0.state == .paused && $0.ackedState == .pause } }, namespace)
      let rs = node0.ranks()
      XCTAssertEqual(Set(rs.map(\.ackedStep)).count, 1, "\(namespace): \(rs.map(\.ackedStep))")
      XCTAssertEqual(Set(rs.map(\.lastStep)).count, 1, "\(namespace): \(rs.map(\.lastStep))")
      let own = node1.ranks().filter(\.attached)
      XCTAssertEqual(own.map(\.ackedStep), [rs[0].ackedStep, rs[0].ackedStep], namespace)
      XCTAssertEqual(node0.control().desired, .pause)
      XCTAssertEqual(node1.control().desired, .pause)
      let stepAtPause = rs[0].lastStep
      usleep(500_000)
      XCTAssertEqual(node0.ranks().map(\.lastStep), Array(repeating: stepAtPause, count: 4), namespace)
      // a paused node 1 keeps reporting: its forwarded heartbeats stay fresh
      for s in node0.ranks() { XCTAssertLessThan(s.heartbeatAge ?? 99, 1, "\(namespace) rank \(s.rank)") }

      let resumed = try runTool(tptop, args + ["resume", job])
      XCTAssertEqual(resumed.status, 0, "resume from \(namespace): \(resumed.stderr)")
      XCTAssertTrue(eventually(20) { node0.ranks().allSatisfy { $0.lastStep > stepAtPause + 2 } }, namespace)
      XCTAssertEqual(node0.control().desired, .run)
      XCTAssertEqual(node1.control().desired, .run)
    }

    // a checkpoint asked for on node 1 is written by every rank of the job
    let checkpoint = try runTool(tptop, ["--namespace", "node1", "checkpoint", job])
    XCTAssertEqual(checkpoint.status, 0, checkpoint.stderr)
    XCTAssertTrue(eventually(30) { node0.ranks().allSatisfy { $0.checkpointsSaved >= 1 } }, "\(node0.ranks().map(\.checkpointsSaved))")
    XCTAssertEqual(Set(node0.ranks().map(\.lastCheckpointStep)).count, 1)

    // node 1's ranks stop (SIGSTOP: mpirun keeps the job): node 0's readers mark node 1 lost
    let victims = node1.ranks().filter(\.attached).map(\.pid)
    XCTAssertEqual(victims.count, 2)
    addTeardownBlock { for pid in victims { kill(pid, SIGKILL) } }
    XCTAssertEqual(node0.lostNodes(after: 1), [])
    XCTAssertFalse(try lsRow(job, ["--stale-after", "1"]).contains("lost"))
    for pid in victims { XCTAssertEqual(kill(pid, SIGSTOP), 0) }
    XCTAssertTrue(eventually(20) { node0.lostNodes(after: 1) == [1] }, "\(node0.ranks().map(\.heartbeatAge))")
    let lostRow = try lsRow(job, ["--stale-after", "1"])
    XCTAssertTrue(lostRow.contains("node 1 lost"), lostRow)
    // node 0's own ranks still report (they wait for node 1 and keep beating)
    XCTAssertTrue(node0.ranks().prefix(2).allSatisfy { ($0.heartbeatAge ?? 99) < 1 })

    // killed, node 1 takes the job down; node 0's segment keeps saying which node went first
    for pid in victims { kill(pid, SIGKILL) }
    XCTAssertTrue(eventually(60) { !p.isRunning })
    XCTAssertNotEqual(p.terminationStatus, 0)
    var ended = ""
    XCTAssertTrue(eventually(20) {
      ended = (try? self.lsRow(job, ["--stale-after", "1"])) ?? ""
      return ended.contains("failed") && ended.contains("node 1 lost")
    }, ended)
  }
}

extension JobReader {
  /// Nodes this reader finds lost after `after` seconds of silence.
  func lostNodes(after: Double) -> [Int] { Self.lostNodes(ranks(), after: after) }
}

extension Array {
  subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
