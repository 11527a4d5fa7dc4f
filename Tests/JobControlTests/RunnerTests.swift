import JobControl
import XCTest

/// The torchrun runner's command line (`tptop launch --runner torchrun`); the PyTorch job it
/// starts is exercised end to end by python/tests/test_torch_e2e.py.
final class RunnerTests: XCTestCase {
  func testMpirunLeavesTheCommandToTheLauncher() throws {
    let plan = LaunchPlan(np: 2, tp: 2, dp: 1, hostfile: nil, job: "j1", trainArguments: ["--steps", "5"])
    XCTAssertNil(try Runner.mpirun.command(for: plan))
  }

  /// `tptop launch --hostfile F --host LIST` reaches mpirun as given (also through supervise),
  /// and ranks placed on machines are not oversubscribed here.
  func testHostfileAndHostListPassThroughToMpirun() throws {
    let plan = LaunchPlan(np: 4, tp: 2, dp: 2, hostfile: "hosts.txt", hosts: "a:2,b:2", job: "j", trainArguments: [])
    let a = plan.mpirunArguments(tptrain: "/bin/tptrain", root: false, cores: 2)
    XCTAssertEqual(Array(a.prefix(6)), ["-np", "4", "--hostfile", "hosts.txt", "--host", "a:2,b:2"])
    XCTAssertFalse(a.contains("--oversubscribe"))
    let s = plan.superviseArguments(tptop: "tptop", mpirun: "mpirun", tptrain: "tptrain", restarts: 1, cores: 2)
    XCTAssertTrue(s.contains("--mpirun-arg=--host") && s.contains("--mpirun-arg=a:2,b:2"), "\(s)")
    let local = LaunchPlan(np: 4, tp: 2, dp: 2, hostfile: nil, job: "j", trainArguments: [])
    XCTAssertTrue(local.mpirunArguments(tptrain: "t", root: false, cores: 2).contains("--oversubscribe"))
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

  /// The torch of the Python the user works in: --python, then the active venv (or conda env),
  /// then the torchrun beside the first python3 on PATH, then any torchrun.
  func testTorchrunFollowsTheActivePython() throws {
    let files: Set<String> = ["/venv/bin/torchrun", "/venv/bin/python3", "/usr/bin/torchrun", "/usr/bin/python3",
                              "/conda/bin/python3", "/opt/py/bin/python3", "/my/python"]
    let exists = { (p: String) in files.contains(p) }
    func launcher(_ python: String? = nil, _ env: [String: String]) throws -> [String] {
      try Runner.torchrunLauncher(python: python, environment: env, isExecutable: exists)
    }
    XCTAssertEqual(try launcher("/my/python", ["VIRTUAL_ENV": "/venv"]), ["/my/python", "-m", "torch.distributed.run"])
    XCTAssertThrowsError(try launcher("/nope/python", [:])) { e in
      XCTAssertEqual("\(e)", "--python /nope/python: not an executable Python interpreter")
    }
    XCTAssertEqual(try launcher(nil, ["VIRTUAL_ENV": "/venv", "PATH": "/usr/bin"]), ["/venv/bin/torchrun"])
    XCTAssertEqual(try launcher(nil, ["CONDA_PREFIX": "/conda", "PATH": "/usr/bin"]), ["/conda/bin/python3", "-m", "torch.distributed.run"])
    // no environment active: the python3 first on PATH decides, not a torchrun later on PATH
    XCTAssertEqual(try launcher(nil, ["PATH": "/opt/py/bin:/usr/bin"]), ["/opt/py/bin/python3", "-m", "torch.distributed.run"])
    XCTAssertEqual(try launcher(nil, ["PATH": "/usr/bin"]), ["/usr/bin/torchrun"])
    XCTAssertThrowsError(try launcher(nil, ["PATH": "/empty"]))
  }
}
