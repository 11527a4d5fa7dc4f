// The HTTP side of `tptop serve`, on SwiftNIO's HTTP/1.1 server pipeline: one event-loop thread
// accepts and answers; scrapes run on one worker thread, so a slow collection never holds up the
// event loop, and clients are served concurrently however slowly they send or read. Clients
// that neither send nor read for `idleTimeout` are closed, and connections beyond
// `maxConnections` are closed at once.

import Atomics
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix

/// A running metrics server.
public final class MetricsHTTPServer: Sendable {
  /// Where it listens (with the port the kernel chose when asked for port 0).
  public let address: ListenAddress
  private let channel: any Channel
  private let group: MultiThreadedEventLoopGroup
  private let pool: NIOThreadPool

  /// Limits for hostile or broken clients.
  public struct Limits: Sendable {
    /// Open connections at most; more are closed as soon as they are accepted.
    public var maxConnections = 256
    /// Seconds without a completed read or write after which a connection is closed.
    public var idleTimeout: Int64 = 30
    public init() {}
  }

  /// A bind that failed, as one line naming the problem and the fix.
  public struct BindFailure: Error, CustomStringConvertible {
    public let description: String
  }

  /// Binds `address` and starts serving `scraper`'s metrics; collects in the background every
  /// `refreshSeconds` so that no record is missed between sparse scrapes.
  /// - Throws: `BindFailure` when the address is in use, not this machine's, or not allowed.
  public init(address: ListenAddress, scraper: MetricsScraper, limits: Limits = Limits(), refreshSeconds: Int64 = 1) throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let pool = NIOThreadPool(numberOfThreads: 1)
    pool.start()
    self.group = group
    self.pool = pool
    let open = ManagedAtomic<Int>(0)
    let bootstrap = ServerBootstrap(group: group)
      .serverChannelOption(ChannelOptions.backlog, value: 256)
      .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { child in
        if open.wrappingIncrementThenLoad(ordering: .relaxed) > limits.maxConnections {
          open.wrappingDecrement(ordering: .relaxed)
          return child.close()
        }
        child.closeFuture.whenComplete { _ in open.wrappingDecrement(ordering: .relaxed) }
        return child.eventLoop.makeCompletedFuture(withResultOf: {
          let sync = child.pipeline.syncOperations
          try sync.addHandler(IdleStateHandler(allTimeout: .seconds(limits.idleTimeout)))
          try sync.configureHTTPServerPipeline(withErrorHandling: true)
          try sync.addHandler(MetricsHTTPHandler(scraper: scraper, pool: pool))
        })
      }
    let channel: any Channel
    do {
      channel = try bootstrap.bind(host: address.host, port: address.port).wait()
    } catch {
      try? group.syncShutdownGracefully()
      try? pool.syncShutdownGracefully()
      throw BindFailure(description: Self.explain(error, address))
    }
    self.channel = channel
    self.address = ListenAddress(host: address.host, port: channel.localAddress?.port ?? address.port)
    // the background collection, on the worker thread like the scrapes
    channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(refreshSeconds), delay: .seconds(refreshSeconds)) { _ in
      pool.submit { state in if state == .active { scraper.refresh() } }
    }
  }

  /// Blocks until the server stops.
  public func wait() throws { try channel.closeFuture.wait() }

  /// Stops accepting, closes, and releases the threads.
  public func shutdown() {
    try? channel.close().wait()
    try? group.syncShutdownGracefully()
    try? pool.syncShutdownGracefully()
  }

  static func explain(_ error: any Error, _ address: ListenAddress) -> String {
    let fix = "choose another with --listen HOST:PORT"
    if let io = error as? IOError {
      switch io.errnoCode {
      case EADDRINUSE: return "cannot listen on \(address): the port is in use (another tptop serve?); \(fix)"
      case EACCES, EPERM:
        return "cannot listen on \(address): no permission to bind it (ports below 1024 need root or CAP_NET_BIND_SERVICE); \(fix)"
      case EADDRNOTAVAIL: return "cannot listen on \(address): no interface of this machine has that address; \(fix)"
      default: return "cannot listen on \(address): \(io.description); \(fix)"
      }
    }
    return "cannot listen on \(address): \(error); \(fix)"
  }
}

/// Answers the requests of one connection (pipelined requests in order).
final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart

  private let scraper: MetricsScraper
  private let pool: NIOThreadPool
  private var request: HTTPRequestHead?

  init(scraper: MetricsScraper, pool: NIOThreadPool) {
    self.scraper = scraper
    self.pool = pool
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let head): request = head
    case .body: break  // no route takes a body
    case .end:
      guard let head = request else { return }
      request = nil
      answer(head, context: context)
    }
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if event is IdleStateHandler.IdleStateEvent {
      context.close(promise: nil)
      return
    }
    context.fireUserInboundEventTriggered(event)
  }

  private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
    let bodyWanted = head.method != .HEAD
    switch Route.resolve(method: head.method.rawValue, uri: head.uri) {
    case .health:
      respond(context, head, .ok, "text/plain; charset=utf-8", ByteBuffer(string: "ok\n"), body: bodyWanted)
    case .notFound:
      respond(context, head, .notFound, "text/plain; charset=utf-8", ByteBuffer(string: "not found: this server has /metrics and /healthz\n"), body: bodyWanted)
    case .methodNotAllowed:
      respond(context, head, .methodNotAllowed, "text/plain; charset=utf-8",
              ByteBuffer(string: "method \(head.method.rawValue) not allowed: use \(Route.allowed) (the endpoint is read-only)\n"),
              body: true, extra: [("allow", Route.allowed)])
    case .metrics:
      let format = ExpositionFormat.negotiate(accept: head.headers.first(name: "accept"))
      let scraper = self.scraper
      let loop = context.eventLoop
      let bound = NIOLoopBound((self, context), eventLoop: loop)
      pool.runIfActive(eventLoop: loop) { scraper.scrapeBuffer(format) }.whenComplete { result in
        let (handler, context) = bound.value
        switch result {
        case .success(let text):
          handler.respond(context, head, .ok, format.contentType, text, body: bodyWanted)
        case .failure:
          handler.respond(context, head, .serviceUnavailable, "text/plain; charset=utf-8", ByteBuffer(string: "shutting down\n"), body: true)
        }
      }
    }
  }

  private func respond(
    _ context: ChannelHandlerContext, _ request: HTTPRequestHead, _ status: HTTPResponseStatus, _ type: String,
    _ bytes: ByteBuffer, body: Bool, extra: [(String, String)] = []
  ) {
    guard context.channel.isActive else { return }
    var headers = HTTPHeaders([("content-type", type), ("content-length", "\(bytes.readableBytes)")] + extra)
    let keepAlive = request.isKeepAlive
    if !keepAlive { headers.add(name: "connection", value: "close") }
    context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
    if body && bytes.readableBytes > 0 {
      context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
    }
    let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
    if !keepAlive {
      let channel = context.channel
      done.whenComplete { _ in channel.close(promise: nil) }
    }
  }
}
