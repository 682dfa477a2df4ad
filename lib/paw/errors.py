"""One exception family and the exit codes it maps to.

Every error paw raises on purpose is a `PawError`; its message is one line a person can act on
(it never carries a metadata value: those may identify a patient), and its class says what the
run's exit status becomes. Whatever else escapes is a bug: the CLI reports it as FAILED.

    PawError
    ├── ConfigError        paw.yaml is wrong (USAGE)
    │   └── NotReady       a folder or the ledger cannot be used as configured (USAGE)
    ├── UsageError         the command line is wrong: a file or folder given does not exist (USAGE)
    ├── LedgerUnavailable  the ledger cannot be opened or written (FAILED)
    ├── ClaimFailed        a slide could not be moved out of the inbox; it stays there (FAILED)
    ├── SourceChanged      a file changed while paw copied it; the copy is dropped (FAILED)
    └── SlideRefused       this slide goes to quarantine; the message is the reason (QUARANTINED)
        ├── Unsupported        not a format paw can anonymize, or a file it cannot parse
        │   └── FormatError    a parser's one-line reason (formats turn it into Unsupported)
        ├── VerificationFailed the anonymized file failed the independent checks
        └── NamingError        the file name does not fit naming.pattern
"""

from enum import IntEnum


class ExitCode(IntEnum):
    """What a run or command ends with (Synology mails on anything but OK)."""
    OK = 0            # nothing to do, every slide anonymized, or another run holds the lock
    FAILED = 1        # something paw could not finish; the next run resumes it
    USAGE = 2         # configuration or usage error
    QUARANTINED = 3   # at least one slide was quarantined
    INTERRUPTED = 130  # Ctrl-C
    CLOSED_PIPE = 141  # the reader of the output went away (`| head`), as for a process killed by SIGPIPE


class PawError(Exception):
    """Base of every error paw raises on purpose."""
    exit_code = ExitCode.FAILED


class ConfigError(PawError):
    """The message says which key is wrong and what to do."""
    exit_code = ExitCode.USAGE


class UsageError(PawError):
    """The command line names something that cannot be used (a missing file or folder)."""
    exit_code = ExitCode.USAGE


class NotReady(ConfigError):
    """Found before anything moves: a folder or the ledger paw needs cannot be used. The
    message names it and the fix."""


class LedgerUnavailable(PawError):
    """The ledger database cannot be reached or used; the message never holds the password."""


class ClaimFailed(PawError):
    """A slide could not be taken from the inbox (a permission, a name the system refuses);
    it is where it was, unchanged. After a few attempts it is left alone until it changes
    (at once when `final`: a FIFO or device in it). `errno` is the system's error, if any."""

    def __init__(self, message, errno=None, final=False):
        super().__init__(message)
        self.errno = errno
        self.final = final


class SourceChanged(PawError):
    """A file changed while paw copied it between file systems: the copy is discarded and the
    source stays (it is judged afresh by the next scan)."""


class SlideRefused(PawError):
    """The slide goes to quarantine; the message is the reason."""
    exit_code = ExitCode.QUARANTINED


class Unsupported(SlideRefused):
    """A file paw will not anonymize (unknown or unsupported format, unparseable)."""


class FormatError(Unsupported):
    """A parser met something it cannot safely read or edit; the message names what."""


class VerificationFailed(SlideRefused):
    """The anonymized file must not reach the outbox."""


class NamingError(SlideRefused):
    """The original name does not yield the identifiers naming.pattern asks for."""
