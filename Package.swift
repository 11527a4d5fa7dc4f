// swift-tools-version:6.0
import PackageDescription

// Release builds drop bounds/overflow checks in the numeric kernels; debug builds keep them.
// On x86-64 they target Haswell-class CPUs (AVX2 + FMA) so the element-wise loops vectorise.
#if arch(x86_64)
let releaseFlags = ["-Ounchecked", "-wmo", "-target-cpu", "haswell"]
#else
let releaseFlags = ["-Ounchecked", "-wmo"]
#endif
let fast: [SwiftSetting] = [.unsafeFlags(releaseFlags, .when(configuration: .release))]

let package = Package(
  name: "tptop",
  products: [
    .executable(name: "tptrain", targets: ["tptrain"]),
    .executable(name: "tptop", targets: ["tptop"]),
    .executable(name: "tpcollectives", targets: ["tpcollectives"]),
    .executable(name: "tptop-dev", targets: ["tptop-dev"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/groue/GRDB.swift", exact: "7.10.0"),
    .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
  ],
  targets: [
    // C shims: one per C library, each imported by exactly one Swift module.
    .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
    .systemLibrary(name: "CBLAS", providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(name: "CCurses", providers: [.apt(["libncurses-dev"])]),
    // glibc's CPU-affinity and thread-naming calls (GNU extensions the Glibc module leaves out).
    .systemLibrary(name: "CSched"),
    // futex(2) wait and wake on a shared word (syscall(2) is variadic, so Swift cannot call it).
    .systemLibrary(name: "CFutex"),

    // The job's vocabulary, defined once: step metrics, latency histogram, run/desired states,
    // split kinds, model shape, sharded tensors. No dependencies; every layer below imports it.
    .target(name: "JobSchema", swiftSettings: fast),
    // Typed wrapper over MPI communicators and collectives (the only importer of CMPI).
    .target(name: "TPComm", dependencies: ["CMPI", "JobSchema"], swiftSettings: fast),
    // Numeric kernels, worker pool and the BLAS wrapper (the only importer of CBLAS). No MPI.
    .target(name: "TPKernels", dependencies: ["CBLAS"], swiftSettings: fast),
    // Checkpoint directory layout and manifest: the rules tptrain writes by and others read by. No MPI.
    .target(name: "CheckpointLayout", dependencies: ["JobSchema"], swiftSettings: fast),
    // The tensor-parallel GPT-2 engine.
    .target(name: "TPEngine", dependencies: ["JobSchema", "TPComm", "TPKernels", "CSched", "CheckpointLayout"], swiftSettings: fast),
    // tptrain's flags and run set-up rules (model, settings, resume, checkpoint directory), without MPI calls.
    .target(
      name: "TrainingSetup",
      dependencies: [
        "TPEngine", "TPComm", "CheckpointLayout",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: fast),
    // Shared-memory telemetry segment: rings, control page, readers. No MPI, no curses.
    .target(
      name: "Telemetry",
      dependencies: ["JobSchema", "CFutex", .product(name: "Atomics", package: "swift-atomics")],
      swiftSettings: fast),
    // Launching and supervising jobs: mpirun, its failure report, restarts from the latest checkpoint.
    .target(name: "JobControl", dependencies: ["JobSchema", "Telemetry", "CheckpointLayout"], swiftSettings: fast),
    // The run store: every recorded run in SQLite (GRDB), its recorder and readers. No curses, no MPI.
    .target(
      name: "RunStore",
      dependencies: [
        "JobSchema", "Telemetry", "CSched", .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "GRDBSQLite", package: "GRDB.swift"),
      ]),
    // TensorBoard event files both ways: record framing with CRC-32C, the Event messages
    // (generated once from proto/tensorboard_event.proto at the top), log directories. No store, no curses.
    .target(
      name: "TensorBoard",
      dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
    // Dashboard: view model, cell grid, themes; the curses backend is its only curses code.
    .target(name: "Dashboard", dependencies: ["JobSchema", "Telemetry", "JobControl", "CCurses"], swiftSettings: fast),

    // Stored and TensorBoard runs as dashboard sources, and the compare screen: its data, smoothing,
    // table and drawing (tptop's open and compare, and tptop-dev's store benchmark).
    .target(
      name: "RunViews",
      dependencies: ["JobSchema", "Telemetry", "Dashboard", "RunStore", "TensorBoard"],
      swiftSettings: fast),

    // `tptop serve`: the jobs' telemetry as Prometheus/OpenMetrics text over HTTP (read-only).
    .target(
      name: "MetricsEndpoint",
      dependencies: [
        "JobSchema", "Telemetry",
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "Atomics", package: "swift-atomics"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
      ],
      swiftSettings: fast),

    .executableTarget(
      name: "tptrain",
      dependencies: [
        "JobSchema", "TPEngine", "TPKernels", "TPComm", "Telemetry", "TrainingSetup", "CheckpointLayout", "RunStore", "CSched",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: fast),
    .executableTarget(
      name: "tptop",
      dependencies: [
        "JobSchema", "Telemetry", "Dashboard", "JobControl", "MetricsEndpoint", "RunStore", "RunViews", "TensorBoard",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: fast),
    // Checks and times TPComm's collectives (both algorithms) on real ranks: tests and `make bench`.
    .executableTarget(name: "tpcollectives", dependencies: ["JobSchema", "TPComm"], swiftSettings: fast),

    // Benchmarks and test fixtures apart from the product: `make bench`'s measurements, the stress
    // test's writer and reader, a synthetic job, the step-field table for the Python tests.
    .executableTarget(
      name: "tptop-dev",
      dependencies: [
        "JobSchema", "Telemetry", "TelemetryFixtures", "Dashboard", "MetricsEndpoint", "RunStore", "RunViews",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: fast),
    // A job without MPI or a model that writes plausible records for every rank (tests, benchmarks).
    .target(name: "TelemetryFixtures", dependencies: ["JobSchema", "Telemetry"], path: "Tests/TelemetryFixtures"),

    // Helpers shared by the test targets (a missing tool skips locally and fails under CI=true).
    .target(name: "TestSupport", path: "Tests/TestSupport"),

    .testTarget(name: "JobSchemaTests", dependencies: ["JobSchema"]),
    .testTarget(name: "TPKernelsTests", dependencies: ["TPKernels"]),
    .testTarget(name: "TPEngineTests", dependencies: ["TPEngine"]),
    .testTarget(name: "IntegrationTests", dependencies: ["TPEngine", "JobControl", "TestSupport"]),
    .testTarget(name: "TelemetryTests", dependencies: ["JobSchema", "Telemetry", "TelemetryFixtures", "TestSupport"]),
    .testTarget(name: "DashboardTests", dependencies: ["JobSchema", "Dashboard", "Telemetry", "TelemetryFixtures", "JobControl", "TestSupport"]),
    .testTarget(name: "JobControlTests", dependencies: ["JobControl", "CheckpointLayout", "Telemetry", "TelemetryFixtures", "JobSchema", "TestSupport"]),
    .testTarget(name: "MetricsEndpointTests", dependencies: ["MetricsEndpoint", "Telemetry", "TelemetryFixtures", "JobSchema", "TestSupport"]),
    .testTarget(name: "RunStoreTests", dependencies: ["RunStore", "RunViews", "Dashboard", "Telemetry", "TelemetryFixtures", "JobSchema", "TestSupport"]),
    .testTarget(name: "TensorBoardTests", dependencies: ["TensorBoard", "RunStore", "JobSchema", "TestSupport"]),
    .testTarget(name: "TrainingSetupTests", dependencies: ["TrainingSetup", "TPEngine", "CheckpointLayout"]),
  ]
)
