"""The CSV ledger: one file, one row per outcome, appended durably under the run's lock.

UTF-8 with a BOM (Excel opens it correctly), formula-neutralised cells, each row one
`os.write` on an O_APPEND descriptor followed by fsync, one line per row (newlines in values
are flattened by csv_safe).

It grows by a row per slide for years, so nothing per slide reads all of it: `mark()` is the
file's size, journaled before a job's row is appended, and `has_job` reads only from there
(a few rows, whatever the ledger's length); `rows(last=n)` reads the tail.
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
        if last:
            return self._tail(last)
        with open(self.path, encoding="utf-8-sig", newline="") as fh:
            return list(csv.DictReader(fh))

    def mark(self):
        try:
            return os.stat(self.path).st_size
        except FileNotFoundError:
            return 0

    def has_job(self, job, since=None):
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return False
        if since is None or not 0 < since <= size:  # no mark, or the ledger was replaced
            return any(row.get("job") == job for row in self.rows())
        with open(self.path, "rb") as fh:
            header = self._header(fh)
            fh.seek(since)
            tail = fh.read().decode("utf-8", "replace")
        column = header.index("job") if "job" in header else COLUMNS.index("job")
        return any(len(row) > column and row[column] == job for row in csv.reader(io.StringIO(tail)))

    @staticmethod
    def _header(fh):
        first = fh.readline().decode("utf-8-sig", "replace")
        return next(csv.reader([first]), [])

    def _tail(self, last, block=1 << 16):
        """The last rows, reading backwards from the end until there are enough lines."""
        with open(self.path, "rb") as fh:
            header = self._header(fh)
            start = fh.tell()
            end = fh.seek(0, os.SEEK_END)
            position, data = end, b""
            while position > start and data.count(b"\n") <= last:
                step = min(block, position - start)
                position -= step
                fh.seek(position)
                data = fh.read(step) + data
        lines = data.decode("utf-8", "replace").splitlines()
        if position > start:
            lines = lines[1:]  # the first line may be cut
        rows = [dict(zip(header, values)) for values in csv.reader(lines) if values]
        return rows[-last:]
