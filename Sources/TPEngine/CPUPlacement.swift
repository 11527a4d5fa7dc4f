// Which cores a rank's BLAS threads run on.
//
// OpenMPI binds every rank to one core by default when it starts two ranks or fewer, so
// `mpirun -np 1 tptrain` on a 2-core machine would run both OpenBLAS threads on core 0 and leave
// core 1 idle. A rank's fair share is (cores on the node / ranks on the node); when mpirun's
// *default* binding gives it fewer cores than that, the rank widens its own binding to its share
// (what `--map-by slot:PE=n` would have done). A binding the user asked for explicitly
// (`--bind-to …`, seen as OMPI_MCA_hwloc_base_binding_policy) is kept, and the thread count is
// lowered to the cores it allows instead of stacking threads on one core.

import CSched
import Glibc

public struct CPUPlacement: Equatable, Sendable {
  /// OpenBLAS threads for this rank.
  public var threads: Int
  /// The CPUs this rank may run on after placement (ascending).
  public var cpus: [Int]
  /// Whether the rank's binding was widened.
  public var widened: Bool
  /// A line for the user when the requested thread count could not be honoured; nil otherwise.
  public var note: String?

  /// Pure decision, separated from the system calls for testing.
  /// - nodeCPUs: the CPUs ranks on this node may use (the launcher's own affinity).
  /// - ownCPUs: this rank's current affinity.
  /// - explicitBinding: the binding policy the user gave mpirun, if any.
  public static func decide(nodeCPUs: [Int], ownCPUs: [Int], localRank: Int, localSize: Int,
                            requestedThreads: Int?, explicitBinding: String?) -> CPUPlacement {
    let node = nodeCPUs.isEmpty ? ownCPUs : nodeCPUs.sorted()
    let own = ownCPUs.sorted()
    let share = max(1, requestedThreads ?? node.count / max(1, localSize))
    if own.count >= share || own.isEmpty {
      return CPUPlacement(threads: share, cpus: own, widened: false, note: nil)
    }
    if let policy = explicitBinding, policy.lowercased() != "none" {
      let note = "note: mpirun --bind-to \(policy) gives each rank \(own.count) core(s); running \(own.count) BLAS thread(s), not \(share) (use --bind-to none or --map-by slot:PE=\(share))"
      return CPUPlacement(threads: own.count, cpus: own, widened: false, note: note)
    }
    // The rank's block of `share` node CPUs, by node-local rank.
    let start = (localRank * share) % node.count
    let block = (0..<min(share, node.count)).map { node[(start + $0) % node.count] }
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
    var placement = decide(nodeCPUs: node, ownCPUs: own, localRank: localRank, localSize: localSize,
                           requestedThreads: requestedThreads, explicitBinding: env)
    if placement.widened && !setAffinity(placement.cpus) {
      // The kernel refused (e.g. a cpuset narrower than the launcher's): keep the binding.
      placement = CPUPlacement(threads: min(placement.threads, max(1, own.count)), cpus: own, widened: false, note: nil)
    }
    return placement
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
