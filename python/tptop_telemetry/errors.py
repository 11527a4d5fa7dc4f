"""The one exception of the library. Its text is one line naming the problem and the fix, the
same wording as the Swift ``TelemetryError``."""


class TelemetryError(Exception):
    """Creating, opening or writing a segment failed; ``str(e)`` is one line."""
