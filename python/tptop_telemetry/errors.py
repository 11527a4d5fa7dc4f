"""The library's exceptions. Their text is one line naming the problem and the fix, the same
wording as the Swift ``TelemetryError``; ``exit_status`` is what a program that stops on one
exits with (tptrain's ``TrainingExit`` codes, which the supervisor decides by)."""

import os
import sys


class TelemetryError(Exception):
    """Creating, opening or writing a segment failed; ``str(e)`` is one line."""

    #: TrainingExit.failed
    exit_status = 1


class JobNameTaken(TelemetryError):
    """A segment of the job's name exists (a live job, or a finished one not yet collected):
    another name may start."""

    #: TrainingExit.jobNameTaken
    exit_status = 4


def report_and_exit(error, program=None):
    """Prints ``error`` as one line, ``<program>: <text>``, on stderr and exits with its
    ``exit_status`` (1 for an exception that is not a ``TelemetryError``)."""
    program = program or os.path.basename(sys.argv[0] or "python") or "python"
    print(f"{program}: {error}", file=sys.stderr, flush=True)
    sys.exit(getattr(error, "exit_status", 1))


def install_launch_hook():
    """Under ``tptop launch`` (``TPTOP_JOB`` set) a script is a program of tptop's: an uncaught
    ``TelemetryError`` prints its one line instead of a traceback (Python then exits 1). Any
    other exception keeps the interpreter's own report."""
    previous = sys.excepthook

    def hook(kind, value, traceback):
        if isinstance(value, TelemetryError):
            program = os.path.basename(sys.argv[0] or "python") or "python"
            print(f"{program}: {value}", file=sys.stderr, flush=True)
        else:
            previous(kind, value, traceback)

    sys.excepthook = hook
