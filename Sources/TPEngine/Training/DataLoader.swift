// Token streams: llm.c token files (uint16) or plain text (one byte = one token), memory-mapped.
// Batch order: step k (from 0) uses window w = k mod W, W = ⌊(N−1)/(d·B·T)⌋; DP replica j takes
// tokens [w·d·B·T + j·B·T, … + B·T] as inputs and the same shifted by one as targets.

import Glibc

public let tokenFileMagic: Int32 = 20240520
public let tokenFileVersion: Int32 = 1

public final class TokenStream {
  public enum Kind: Sendable { case llmcTokens, bytes }
  public let path: String
  public let kind: Kind
  public let count: Int
  private let base: UnsafeRawPointer
  private let mappedLength: Int
  private let payload: UnsafeRawPointer

  /// Maps `path`. `.bin` files must be llm.c token files; other files are token files when they
  /// start with the token magic, and byte text otherwise.
  public init(path: String) throws {
    self.path = path
    let fd = open(path, O_RDONLY)
    if fd < 0 { throw EngineError("cannot open data file \(path): \(String(cString: strerror(errno))); pass an existing file with --data") }
    defer { close(fd) }
    var st = stat()
    fstat(fd, &st)
    if (st.st_mode & S_IFMT) == S_IFDIR {
      throw EngineError("data path \(path) is a directory: pass a text file or an llm.c token file with --data")
    }
    let size = Int(st.st_size)
    if size == 0 { throw EngineError("data file \(path) is empty: pass a text file or an llm.c token file with --data") }
    guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
      throw EngineError("cannot map data file \(path): \(String(cString: strerror(errno)))")
    }
    base = UnsafeRawPointer(m)
    mappedLength = size
    let looksLikeTokens = size >= 4 && base.loadUnaligned(as: Int32.self) == tokenFileMagic
    if path.hasSuffix(".bin") || looksLikeTokens {
      guard size >= 1024 else {
        munmap(m, size)
        throw EngineError("token file \(path) is truncated: \(size) bytes, shorter than its 1024-byte header")
      }
      let magic = base.loadUnaligned(as: Int32.self)
      let version = base.loadUnaligned(fromByteOffset: 4, as: Int32.self)
      let n = Int(base.loadUnaligned(fromByteOffset: 8, as: Int32.self))
      if magic != tokenFileMagic {
        munmap(m, size)
        throw EngineError("token file \(path) has wrong magic \(magic) (expected \(tokenFileMagic)): not an llm.c token file; give a text file without the .bin suffix or re-export the tokens")
      }
      if version != tokenFileVersion {
        munmap(m, size)
        throw EngineError("token file \(path) has version \(version); only version \(tokenFileVersion) is supported")
      }
      if n < 0 || 1024 + 2 * n > size {
        munmap(m, size)
        throw EngineError("token file \(path) is truncated: header says \(n) tokens, file holds \(max(0, (size - 1024) / 2))")
      }
      kind = .llmcTokens
      count = n
      payload = base + 1024
    } else {
      kind = .bytes
      count = size
      payload = base
    }
  }

  deinit { munmap(UnsafeMutableRawPointer(mutating: base), mappedLength) }

  @inline(__always) public subscript(i: Int) -> Int32 {
    switch kind {
    case .llmcTokens: return Int32(payload.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
    case .bytes: return Int32(payload.load(fromByteOffset: i, as: UInt8.self))
    }
  }

  /// Throws if any token id is ≥ `vocab`.
  public func validate(vocab: Int) throws {
    if kind == .bytes && vocab >= 256 { return }
    for i in 0..<count where Int(self[i]) >= vocab {
      throw EngineError("data file \(path) has token id \(self[i]) at position \(i), not below the model's vocab \(vocab): use a model with a larger --vocab or re-tokenise")
    }
  }
}

/// Reads the batches of one DP replica in the documented order.
public struct DataLoader {
  public let stream: TokenStream
  public let B: Int
  public let T: Int
  public let dp: Int
  public let dpRank: Int
  public let windows: Int

  public init(stream: TokenStream, batch B: Int, seq T: Int, dp: Int, dpRank: Int) throws {
    self.stream = stream
    self.B = B
    self.T = T
    self.dp = dp
    self.dpRank = dpRank
    windows = (stream.count - 1) / (dp * B * T)
    if windows < 1 {
      throw EngineError("batch needs \(dp * B * T + 1) tokens (dp \(dp) × B \(B) × T \(T) + 1) but \(stream.path) has \(stream.count): lower --batch/--seq or use more data")
    }
  }

  /// First token of the inputs of step `k` (from 0) for this replica.
  public func start(step k: Int) -> Int { (k % windows) * dp * B * T + dpRank * B * T }

  /// Fills inputs and targets (B·T each) for step `k`.
  public func load(step k: Int, inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>) {
    let s = start(step: k)
    for i in 0..<(B * T) {
      inputs[i] = stream[s + i]
      targets[i] = stream[s + i + 1]
    }
  }
}
