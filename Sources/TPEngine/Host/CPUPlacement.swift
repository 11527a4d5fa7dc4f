// Which cores a rank's threads run on.
//
// OpenMPI binds every rank to one core by default when it starts two ranks or fewer, so
// `mpirun -np 1 tptrain` on a 2-core machine would run both OpenBLAS threads on core 0 and leave
// core 1 idle. A rank's fair share is (cores on the node / ranks on the node), counted in
// physical cores (hyperthreads of one core share its FMA units, so one thread per core); when
// mpirun's *default* binding gives it fewer cores than that, the rank widens its own binding to
// its block of whole cores (what `--map-by slot:PE=n` would have done). A binding the user asked
// for explicitly (`--bind-to …`, seen as OMPI_MCA_hwloc_base_binding_policy) is kept, and the
// thread count is lowered to the cores it allows instead of stacking threads on one core.

import CSched
import Foundation
import Glibc

public struct CPUPlacement: Equatable, Sendable {
  /// Threads for this rank (OpenBLAS's and the worker pool's).
  public var threads: Int
  /// The CPUs this rank may run on after placement (ascending).
  public var cpus: [Int]
  /// Whether the rank's binding was widened.
  public var widened: Bool
  /// A line for the user when the requested thread count could not be honoured; nil otherwise.
  public var note: String?

  /// Pure decision, separated from the system calls for testing.
  /// - nodeCores: the cores ranks on this node may use, each as its CPUs (hyperthreads).
  /// - ownCPUs: this rank's current affinity.
  /// - explicitBinding: the binding policy the user gave mpirun, if any.
  public static func decide(nodeCores: [[Int]], ownCPUs: [Int], localRank: Int, localSize: Int,
                            requestedThreads: Int?, explicitBinding: String?) -> CPUPlacement {
    let own = Set(ownCPUs)
    let cores = nodeCores.isEmpty ? ownCPUs.sorted().map { [$0] } : nodeCores
    let ownCores = cores.filter { !own.isDisjoint(with: $0) }.count
    let share = max(1, requestedThreads ?? cores.count / max(1, localSize))
    if ownCores >= share || own.isEmpty || cores.isEmpty {
      return CPUPlacement(threads: share, cpus: ownCPUs.sorted(), widened: false, note: nil)
    }
    if let policy = explicitBinding, policy.lowercased() != "none" {
      let n = max(1, ownCores)
      let note = "note: mpirun --bind-to \(policy) gives each rank \(n) core(s); running \(n) thread(s), not \(share) (use --bind-to none or --map-by slot:PE=\(share))"
      return CPUPlacement(threads: n, cpus: ownCPUs.sorted(), widened: false, note: note)
    }
    // The rank's block of `share` whole cores, by node-local rank.
    let start = (localRank * share) % cores.count
    let block = (0..<min(share, cores.count)).flatMap { cores[(start + $0) % cores.count] }
    return CPUPlacement(threads: share, cpus: block.sorted(), widened: true, note: nil)
  }

  /// Applies the decision for the calling process: call before the BLAS thread count is set, so
  /// the BLAS worker threads created then inherit the widened binding.
  public static func apply(localRank: Int, localSize: Int, requestedThreads: Int?) -> CPUPlacement {
    let own = affinity(of: 0)
    var node = affinity(of: getppid())
    if node.isEmpty || !Set(node).isSuperset(of: own) {
      node = Array(0..<max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
    let env = getenv("OMPI_MCA_hwloc_base_binding_policy").map { String(cString: $0) }
    var placement = decide(nodeCores: cores(of: node), ownCPUs: own, localRank: localRank, localSize: localSize,
                           requestedThreads: requestedThreads, explicitBinding: env)
    if placement.widened && !setAffinity(placement.cpus) {
      // The kernel refused (e.g. a cpuset narrower than the launcher's): keep the binding.
      placement = CPUPlacement(threads: min(placement.threads, max(1, cores(of: own).count)), cpus: own, widened: false, note: nil)
    }
    return placement
  }

  /// `cpus` grouped by physical core (package and core id from sysfs), cores ordered by their
  /// first CPU; a CPU whose topology cannot be read counts as a core of its own.
  public static func cores(of cpus: [Int]) -> [[Int]] {
    func read(_ path: String) -> String? {
      (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    var members: [String: [Int]] = [:]
    var order: [String] = []
    for c in cpus.sorted() {
      let base = "/sys/devices/system/cpu/cpu\(c)/topology/"
      var key = "cpu\(c)"
      if let package = read(base + "physical_package_id"), let core = read(base + "core_id") { key = package + "/" + core }
      if members[key] == nil { order.append(key) }
      members[key, default: []].append(c)
    }
    return order.map { members[$0]! }
  }

  /// The CPUs a process may run on; empty when it cannot be read.
  public static func affinity(of pid: pid_t) -> [Int] {
    var mask = [UInt64](repeating: 0, count: 16)
    guard csched_getaffinity(pid, mask.count * 8, &mask) == 0 else { return [] }
    return (0..<(mask.count * 64)).filter { mask[$0 / 64] >> UInt64($0 % 64) & 1 != 0 }
  }

  static func setAffinity(_ cpus: [Int]) -> Bool {
    var mask = [UInt64](repeating: 0, count: 16)
    for c in cpus where c < mask.count * 64 { mask[c / 64] |= 1 << UInt64(c % 64) }
    return csched_setaffinity(0, mask.count * 8, &mask) == 0
  }
}
