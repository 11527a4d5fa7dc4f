/// The project's version, printed by `tptop --version` and `tptrain --version` (the Python
/// writer's package carries the same number, `python/pyproject.toml`).
public enum ProjectVersion {
  public static let string = "1.1.0"
}
