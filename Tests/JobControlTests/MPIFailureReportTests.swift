import JobControl
import XCTest

/// Both forms of mpirun's report of the rank that ended a job.
final class MPIFailureReportTests: XCTestCase {
  func testSignalForm() {
    let stderr = """
      step 3
      --------------------------------------------------------------------------
      mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed).
      --------------------------------------------------------------------------
      """
    let r = MPIFailureReport.parse(stderr)
    XCTAssertEqual(r, MPIFailureReport(rank: 1, cause: .signal("9 (Killed)")))
    XCTAssertEqual(r?.reason, "was killed by signal 9 (Killed)")
    XCTAssertEqual(r?.mpirunWords, "exited on signal 9 (Killed).")
    XCTAssertEqual(r?.killedBySignal, true)
  }

  func testExitCodeForm() {
    let stderr = """
      --------------------------------------------------------------------------
      Primary job  terminated normally, but 1 process returned
      a non-zero exit code. Per user-direction, the job has been aborted.
      --------------------------------------------------------------------------
      --------------------------------------------------------------------------
      mpirun detected that one or more processes exited with non-zero status, thus causing
      the job to be terminated. The first process to do so was:

        Process name: [[2795,1],1]
        Exit code:    3
      --------------------------------------------------------------------------
      """
    let r = MPIFailureReport.parse(stderr)
    XCTAssertEqual(r, MPIFailureReport(rank: 1, cause: .exitCode(3)))
    XCTAssertEqual(r?.reason, "exited with code 3")
    XCTAssertEqual(r?.mpirunWords, "exited with code 3")
    XCTAssertEqual(r?.killedBySignal, false)
  }

  func testExitCodeWithoutProcessName() {
    XCTAssertEqual(MPIFailureReport.parse("  Exit code:    2\n"), MPIFailureReport(rank: nil, cause: .exitCode(2)))
  }

  func testNoReport() {
    XCTAssertNil(MPIFailureReport.parse("tptrain: error: --steps must be ≥ 0\n"))
    XCTAssertNil(MPIFailureReport.parse("mpirun noticed that process rank x exited on signal 9\n"), "no rank number")
  }

  func testRankFailureDescription() {
    XCTAssertEqual(RankFailure(rank: 1, reason: "was killed by signal 9 (Killed)", lastStep: 42).description,
                   "rank 1 was killed by signal 9 (Killed) after step 42")
    XCTAssertEqual(RankFailure(rank: nil, reason: "died (mpirun named no rank)").description, "a rank died (mpirun named no rank)")
  }
}
