import JobControl
import XCTest

/// The torchrun runner's command line (`tptop launch --runner torchrun`); the PyTorch job it
/// starts is exercised end to end by python/tests/test_torch_e2e.py.
final class RunnerTests: XCTestCase {
  func testMpirunLeavesTheCommandToTheLauncher() throws {
    let plan = LaunchPlan(np: 2, tp: 2, dp: 1, hostfile: nil, job: "j1", trainArguments: ["--steps", "5"])
    XCTAssertNil(try Runner.mpirun.command(for: plan))
  }

  func testTorchrunCommandPassesTheJobAndTheGrid() throws {
    let plan = LaunchPlan(np: 4, tp: 2, dp: 2, hostfile: nil, job: "j2",
                          trainArguments: ["examples/torch_tp_gpt.py", "--tp", "2"])
    XCTAssertEqual(plan.torchrunEnvironment, ["TPTOP_JOB=j2", "TPTOP_TP=2", "TPTOP_DP=2"])
    XCTAssertEqual(plan.torchrunArguments,
                   ["--standalone", "--nnodes", "1", "--nproc_per_node", "4", "--redirects", "1", "--tee", "1",
                    "examples/torch_tp_gpt.py", "--tp", "2"])
    // Where torchrun (or python3) is on PATH, the command is env, the assignments, the launcher,
    // then the arguments.
    guard let command = try? Runner.torchrun.command(for: plan) else { return }
    XCTAssertTrue(command[0].hasSuffix("/env"), "\(command)")
    XCTAssertEqual(Array(command[1...3]), plan.torchrunEnvironment)
    XCTAssertEqual(Array(command.suffix(plan.torchrunArguments.count)), plan.torchrunArguments)
    XCTAssertTrue(command[4].hasSuffix("torchrun") || command[5...6] == ["-m", "torch.distributed.run"], "\(command)")
  }
}
