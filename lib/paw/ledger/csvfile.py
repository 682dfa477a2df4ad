"""The CSV ledger: one file, one row per outcome, appended durably under the run's lock.

UTF-8 with a BOM (Excel opens it correctly), formula-neutralised cells, each row one
`os.write` on an O_APPEND descriptor followed by fsync.
"""

import csv
import io
import os

from ..durable import fsync_dir
from . import COLUMNS, Ledger, csv_safe


class CsvLedger(Ledger):
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
