"""The ledger: one row per slide outcome, mapping pseudonym to original.

It is the re-identification key, so it lives outside the outbox and is created 0600. Backends
share one small interface: append, has_job, rows, and claims (claim, heartbeat, release,
take_over_stale, release_orphans) that only PostgreSQL needs, because only it lets several
hosts share an inbox. CSV is the default and needs no server.
"""

import csv
import io
import os

from .fsops import fsync_dir

COLUMNS = ["time_utc", "job", "status", "original", "output", "format", "kept", "removed",
           "bytes", "seconds", "error", "sha256"]
_DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r", "\0")


def csv_safe(value):
    """A cell Excel and LibreOffice show as text: newlines flattened, formulas neutralised."""
    text = "" if value is None else str(value)
    text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\0", " ")
    if text.startswith(_DANGEROUS_START):
        text = "'" + text
    return text


class CsvLedger:
    def __init__(self, path):
        self.path = path

    def append(self, row):
        """One row, written with a single os.write on an O_APPEND descriptor, then fsync."""
        buffer = io.StringIO()
        csv.writer(buffer).writerow([csv_safe(row.get(c, "")) for c in COLUMNS])
        # An undecodable byte in a file name is written as \udcXX rather than breaking the row.
        data = buffer.getvalue().encode("utf-8", "backslashreplace")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            if os.fstat(fd).st_size == 0:
                header = io.StringIO()
                csv.writer(header).writerow(COLUMNS)
                data = b"\xef\xbb\xbf" + header.getvalue().encode("utf-8") + data
                created = True
            else:
                created = False
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(os.path.dirname(self.path) or ".")

    def rows(self, last=None):
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
        return rows[-last:] if last else rows

    def has_job(self, job):
        return any(row.get("job") == job for row in self.rows())

    # One host, one lock: every slide in this inbox is ours. (PostgreSQL shares inboxes.)
    def claim(self, original, job, stage):
        return True

    def heartbeat(self, job):
        return True

    def release(self, job):
        pass

    def take_over_stale(self, stage_for):
        return []

    def release_orphans(self, staged_jobs):
        pass

    def close(self):
        pass


def open_ledger(config):
    """The configured backend; PostgreSQL raises LedgerUnavailable if it cannot be reached."""
    if config.postgres_dsn:
        from .ledger_postgres import PostgresLedger
        return PostgresLedger(config.postgres_dsn, config.inbox, config.state_dir,
                              config.claim_timeout_seconds)
    return CsvLedger(config.ledger_csv)


def export_csv(ledger, out):
    """Every row as CSV (formula-safe) to a text stream."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in ledger.rows():
        writer.writerow([csv_safe(row.get(c, "")) for c in COLUMNS])
