// The shard layout as the store keeps it: the `tensors` table, one row per parameter tensor of
// the segment's job description, so `tptop open` shows the Shards view of a run whose segment
// is gone. Shapes, ranges and descriptions are JSON arrays (the Python writer writes the same
// text with `json.dumps`).

import Foundation
import GRDB
import JobSchema

enum StoredLayout {
  static let insertSQL =
    "INSERT OR REPLACE INTO tensors (tensor, name, shape, split, split_dim, ranges, descriptions) VALUES (?, ?, ?, ?, ?, ?, ?)"

  /// Replaces the table's rows with `tensors` (a restart publishes the same layout again).
  static func write(_ tensors: [ShardedTensor], _ d: Database) throws {
    guard !tensors.isEmpty else { return }
    try d.execute(sql: "DELETE FROM tensors")
    let st = try d.cachedStatement(sql: insertSQL)
    for (i, t) in tensors.enumerated() {
      let ranges = t.ranks.map { $0.map { [$0.lowerBound, $0.upperBound] } }
      try st.execute(arguments: [i, t.name, json(t.shape), t.split.name, t.splitDim, json(ranges), json(t.rankDescriptions)])
    }
  }

  /// The stored layout in tensor order; empty for a run stored without one (schema 1, or a
  /// job that published none). A row that does not decode ends the list there.
  static func read(_ d: Database) throws -> [ShardedTensor] {
    guard try d.tableExists("tensors") else { return [] }
    var out: [ShardedTensor] = []
    for r in try Row.fetchAll(d, sql: "SELECT * FROM tensors ORDER BY tensor") {
      guard let shape = decode([Int].self, r["shape"]), let ranges = decode([[[Int]]].self, r["ranges"]),
            let descriptions = decode([String].self, r["descriptions"]),
            let split = SplitKind.allCases.first(where: { $0.name == (r["split"] as String? ?? "") }),
            ranges.allSatisfy({ $0.allSatisfy { $0.count == 2 && $0[0] <= $0[1] } })
      else { break }
      out.append(ShardedTensor(name: r["name"] ?? "?", shape: shape, split: split, splitDim: r["split_dim"],
                               ranks: ranges.map { $0.map { $0[0]..<$0[1] } }, rankDescriptions: descriptions))
    }
    return out
  }

  static func json<T: Encodable>(_ value: T) -> String {
    String(decoding: (try? JSONEncoder().encode(value)) ?? Data("[]".utf8), as: UTF8.self)
  }

  static func decode<T: Decodable>(_ type: T.Type, _ text: String?) -> T? {
    guard let text else { return nil }
    return try? JSONDecoder().decode(type, from: Data(text.utf8))
  }
}
