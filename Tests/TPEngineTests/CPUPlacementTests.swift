import XCTest
@testable import TPEngine

/// How a rank's BLAS threads are placed on the node's cores.
final class CPUPlacementTests: XCTestCase {
  func testDefaultBindingToOneCoreIsWidenedToTheRanksShare() {
    // mpirun -np 1 on 2 cores binds the rank to core 0 by default
    let p = CPUPlacement.decide(nodeCores: [[0], [1]], ownCPUs: [0], localRank: 0, localSize: 1,
                                requestedThreads: nil, explicitBinding: nil)
    XCTAssertEqual(p, CPUPlacement(threads: 2, cpus: [0, 1], widened: true, note: nil))
  }

  func testTwoRanksOnFourCoresGetDisjointPairs() {
    let r0 = CPUPlacement.decide(nodeCores: [[0], [1], [2], [3]], ownCPUs: [0], localRank: 0, localSize: 2,
                                 requestedThreads: nil, explicitBinding: nil)
    let r1 = CPUPlacement.decide(nodeCores: [[0], [1], [2], [3]], ownCPUs: [1], localRank: 1, localSize: 2,
                                 requestedThreads: nil, explicitBinding: nil)
    XCTAssertEqual(r0.cpus, [0, 1])
    XCTAssertEqual(r1.cpus, [2, 3])
    XCTAssertEqual([r0.threads, r1.threads], [2, 2])
  }

  func testOneRankPerCoreKeepsItsBinding() {
    let p = CPUPlacement.decide(nodeCores: [[0], [1]], ownCPUs: [1], localRank: 1, localSize: 2,
                                requestedThreads: nil, explicitBinding: nil)
    XCTAssertEqual(p, CPUPlacement(threads: 1, cpus: [1], widened: false, note: nil))
  }

  func testMoreRanksThanCoresRunOneThreadEach() {
    let p = CPUPlacement.decide(nodeCores: [[0], [1]], ownCPUs: [0, 1], localRank: 3, localSize: 4,
                                requestedThreads: nil, explicitBinding: nil)
    XCTAssertEqual(p, CPUPlacement(threads: 1, cpus: [0, 1], widened: false, note: nil))
  }

  func testExplicitBindingIsKeptAndThreadsFollowIt() {
    let p = CPUPlacement.decide(nodeCores: [[0], [1]], ownCPUs: [0], localRank: 0, localSize: 1,
                                requestedThreads: nil, explicitBinding: "core")
    XCTAssertEqual(p.threads, 1)
    XCTAssertEqual(p.cpus, [0])
    XCTAssertFalse(p.widened)
    XCTAssertTrue(p.note?.contains("--bind-to none") ?? false, p.note ?? "no note")
  }

  func testExplicitThreadCountWidensOnlyAsFarAsAsked() {
    let p = CPUPlacement.decide(nodeCores: [[0], [1], [2], [3]], ownCPUs: [2], localRank: 0, localSize: 1,
                                requestedThreads: 3, explicitBinding: nil)
    XCTAssertEqual(p, CPUPlacement(threads: 3, cpus: [0, 1, 2], widened: true, note: nil))
    let unbound = CPUPlacement.decide(nodeCores: [[0], [1], [2], [3]], ownCPUs: [0, 1, 2, 3], localRank: 0, localSize: 1,
                                      requestedThreads: 1, explicitBinding: nil)
    XCTAssertEqual(unbound, CPUPlacement(threads: 1, cpus: [0, 1, 2, 3], widened: false, note: nil))
  }

  func testHyperthreadsOfACoreGoTogetherAndCountOnce() {
    // 4 cores × 2 hyperthreads, numbered the Linux way (siblings 4 apart); mpirun binds each of
    // 2 ranks to one whole core by default
    let node = [[0, 4], [1, 5], [2, 6], [3, 7]]
    let r0 = CPUPlacement.decide(nodeCores: node, ownCPUs: [0, 4], localRank: 0, localSize: 2,
                                 requestedThreads: nil, explicitBinding: nil)
    let r1 = CPUPlacement.decide(nodeCores: node, ownCPUs: [1, 5], localRank: 1, localSize: 2,
                                 requestedThreads: nil, explicitBinding: nil)
    XCTAssertEqual(r0, CPUPlacement(threads: 2, cpus: [0, 1, 4, 5], widened: true, note: nil))
    XCTAssertEqual(r1, CPUPlacement(threads: 2, cpus: [2, 3, 6, 7], widened: true, note: nil))
    // 4 ranks: one whole core each, already what mpirun gave
    let r3 = CPUPlacement.decide(nodeCores: node, ownCPUs: [3, 7], localRank: 3, localSize: 4,
                                 requestedThreads: nil, explicitBinding: nil)
    XCTAssertEqual(r3, CPUPlacement(threads: 1, cpus: [3, 7], widened: false, note: nil))
  }

  func testCoresOfThisMachineCoverItsCPUs() {
    let cpus = CPUPlacement.affinity(of: 0)
    let cores = CPUPlacement.cores(of: cpus)
    XCTAssertEqual(cores.flatMap { $0 }.sorted(), cpus)
    XCTAssertFalse(cores.contains { $0.isEmpty })
  }

  func testAffinityOfThisProcessIsReadable() {
    let cpus = CPUPlacement.affinity(of: 0)
    XCTAssertFalse(cpus.isEmpty)
    XCTAssertLessThanOrEqual(cpus.count, Int(sysconf(Int32(_SC_NPROCESSORS_CONF))))
  }
}
