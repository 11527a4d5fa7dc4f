import TPComm
import Telemetry

/// Which node each rank is on, as the telemetry sees it: the machines the ranks run on (ranks
/// that share memory), or, with `--simulate-nodes K` (a testing aid), K contiguous groups of
/// ranks on this machine that behave as separate nodes, each with its own segment in its own
/// namespace (group 0 the default one, group n ≥ 1 `node<n>`).
struct NodeTopology {
  /// This rank's node; node 0 holds world rank 0.
  let index: Int
  /// Number of nodes.
  let count: Int
  /// The ranks of this rank's node (its segment's local ranks).
  let node: Communicator
  /// World ranks of each node, by node index.
  let ranksByNode: [[Int]]
  /// The node of each world rank.
  var rankNodes: [Int] {
    var nodes = [Int](repeating: 0, count: ranksByNode.reduce(0) { $0 + $1.count })
    for (n, ranks) in ranksByNode.enumerated() { for r in ranks where r < nodes.count { nodes[r] = n } }
    return nodes
  }

  /// The segment namespace of this rank's node: simulated node n ≥ 1 has `node<n>`, every real
  /// node the default one (each machine has its own /dev/shm).
  let namespace: String?

  /// Collective over `world`. `shared` holds the ranks sharing this machine's memory.
  init(world: Communicator, shared: Communicator, simulate: Int?) throws {
    if let k = simulate, k > 1 {
      let group = world.size / k
      index = world.rank / group
      count = k
      node = try world.split(color: index, key: world.rank)
      ranksByNode = (0..<k).map { n in Array(n * group..<(n + 1) * group) }
      namespace = index == 0 ? nil : "node\(index)"
      return
    }
    // a node is named by its lowest world rank; nodes are numbered in the order of those
    let leader = shared.allGather(Int64(world.rank)).min() ?? Int64(world.rank)
    let leaders = world.allGather(leader)
    let distinct = Array(Set(leaders)).sorted()
    index = distinct.firstIndex(of: leader) ?? 0
    count = distinct.count
    node = shared
    ranksByNode = distinct.map { l in leaders.indices.filter { leaders[$0] == l } }
    namespace = nil
  }
}
