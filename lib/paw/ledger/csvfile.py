"""The CSV ledger: one file, one row per outcome, appended durably under the run's lock.

UTF-8 with a BOM (Excel opens it correctly), formula-neutralised cells, each row one
`os.write` on an O_APPEND descriptor followed by fsync, one line per row (newlines in values
are flattened by csv_safe). A ledger written by an older paw (fewer columns) gets the current
header once, before the first new row: the file is rewritten atomically, its rows unchanged
(each only longer, so a `mark()` taken before stays at or before the new row).

It grows by a row per slide for years, so nothing per slide reads all of it: `mark()` is the
file's size, journaled before a job's row is appended, and `has_job` reads only from there
(a few rows, whatever the ledger's length); `rows(last=n)` reads the tail.

The case pseudonyms (naming.case) live beside it in `<ledger>.cases.csv`, private like the
ledger (it maps case numbers to pseudonyms): one row per case, appended and fsynced before
the pseudonym is used.
"""

import csv
import io
import os
import re
import time

from ..durable import fsync_dir, write_atomic
from ..errors import LedgerUnavailable
from ..naming import case_key
from . import _DANGEROUS_START, COLUMNS, Ledger, csv_safe

BOM = b"\xef\xbb\xbf"
CASE_COLUMNS = ["case_key", "case", "time_utc"]
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")  # the last field: a row cut short lacks it
_QUOTE = "'"  # a key a spreadsheet would run as a formula is written behind one


def _key_cell(key):
    return _QUOTE + key if key.startswith(_DANGEROUS_START + (_QUOTE,)) else key


def _key_from_cell(cell):
    return cell[1:] if cell.startswith(_QUOTE) else cell


def cases_path(ledger_path):
    """Where the case pseudonyms of a CSV ledger are kept: `ledger.csv` -> `ledger.cases.csv`."""
    stem, extension = os.path.splitext(ledger_path)
    return f"{stem}.cases{extension or '.csv'}"


def _line(values):
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    # An undecodable byte in a file name is written as \udcXX rather than breaking the row.
    return buffer.getvalue().encode("utf-8", "backslashreplace")


def _append(path, data, header):
    """Append `data` with one os.write on an O_APPEND descriptor, then fsync; a new file starts
    with a BOM and `header`. A last line cut short by a crash (no line end) is closed first, so
    the new row never joins it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            data = BOM + _line(header) + data
        elif _last_byte(path, size) != b"\n":
            data = b"\r\n" + data
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if size == 0:
        fsync_dir(os.path.dirname(path) or ".")


def _last_byte(path, size):
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1)


class CsvLedger(Ledger):
    def __init__(self, path):
        self.path = path
        self.cases_path = cases_path(path)
        self._cases = None        # case key -> case pseudonym, read once per run
        self._taken = set()       # every case pseudonym given out
        self._header_ok = False

    def append(self, row):
        """One row, written with a single os.write on an O_APPEND descriptor, then fsync."""
        self._upgrade_header()
        _append(self.path, _line([csv_safe(row.get(c, "")) for c in COLUMNS]), COLUMNS)

    def _upgrade_header(self):
        """Give a ledger of an older paw the current columns (they only ever grow at the end)."""
        if self._header_ok:
            return
        try:
            with open(self.path, "rb") as fh:
                header = self._header(fh)  # the first line only: the ledger may be long
        except FileNotFoundError:
            header = COLUMNS
        if header and header != COLUMNS:
            with open(self.path, encoding="utf-8-sig", newline="") as fh:
                rows = list(csv.reader(fh))  # once in the ledger's life
            if header != COLUMNS[:len(header)]:
                raise LedgerUnavailable(f"ledger {self.path} has columns this paw does not know; "
                                        "move it aside (paw starts a new one) or fix its first line")
            padding = [""] * (len(COLUMNS) - len(header))
            data = BOM + b"".join(_line(r + padding) if r else b"" for r in [COLUMNS] + rows[1:])
            write_atomic(self.path, data, 0o600)
        self._header_ok = True

    def rows(self, last=None):
        if not os.path.exists(self.path):
            return []
        if last:
            return self._tail(last)
        with open(self.path, encoding="utf-8-sig", newline="") as fh:
            return list(csv.DictReader(fh, restval=""))

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
        rows = [{name: values[i] if i < len(values) else "" for i, name in enumerate(header)}
                for values in csv.reader(lines) if values]  # as DictReader(restval="") gives them
        return rows[-last:]

    # --- case pseudonyms ------------------------------------------------------------------------

    def case_pseudonym(self, key, fresh):
        cases = self._known_cases()
        if key in cases:
            return cases[key]
        pseudonym = fresh()
        while pseudonym in self._taken:
            pseudonym = fresh()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        try:
            _append(self.cases_path, _line([_key_cell(key), pseudonym, stamp]), CASE_COLUMNS)
        except OSError as exc:
            raise LedgerUnavailable(f"cannot write the case pseudonyms {self.cases_path}: "
                                    f"{exc.strerror}") from None
        cases[key] = pseudonym
        self._taken.add(pseudonym)
        return pseudonym

    def known_case(self, key):
        return self._known_cases().get(key)

    def find(self, text):
        """Streams the file: a ledger of a million rows is never held whole."""
        from . import _matches
        wanted = text.casefold()
        case = self.known_case(case_key(text))
        if not os.path.exists(self.path):
            return []
        with open(self.path, encoding="utf-8-sig", newline="") as fh:
            return [row for row in csv.DictReader(fh, restval="") if _matches(row, wanted, case)]

    def _known_cases(self):
        if self._cases is None:
            self._cases = {}
            try:
                with open(self.cases_path, "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                return self._cases
            except OSError as exc:
                raise LedgerUnavailable(f"cannot read the case pseudonyms {self.cases_path}: "
                                        f"{exc.strerror}") from None
            text = data.decode("utf-8", "replace").removeprefix("\ufeff")
            rows = csv.reader(io.StringIO(text, newline=""))
            next(rows, None)  # the header
            for row in rows:
                # A row cut short by a crash (its pseudonym was never used) has no full stamp.
                if len(row) == len(CASE_COLUMNS) and row[1] and _STAMP.fullmatch(row[2]):
                    self._cases.setdefault(_key_from_cell(row[0]), row[1])
                    self._taken.add(row[1])
        return self._cases
