"""The ledger: one row per slide outcome, mapping pseudonym to original.

It is the re-identification key, so it lives outside the outbox and is created 0600. Every
backend implements `Ledger`: append, has_job, mark, rows, close, case_pseudonym (the case mapping,
a key back too), and the claims (claim, heartbeat, release, take_over_stale, release_orphans)
that only PostgreSQL needs, because only it lets several hosts share an inbox. CSV (csvfile.py)
is the default and needs no server; PostgreSQL (postgres.py) is imported only when configured.
"""

import csv

from ..naming import case_key

# New columns go at the end: a ledger written by an older paw gets them added (csvfile.py
# rewrites its header, postgres.py migrates the table).
COLUMNS = ["time_utc", "job", "status", "original", "output", "format", "kept", "removed",
           "bytes", "seconds", "error", "sha256",
           "pseudonym",   # the slide's own pseudonym (the drawn label's QR code)
           "case",        # the case pseudonym (naming.case), empty without one
           "folder"]      # where `output` is, relative to the outbox or the quarantine
# The job of a row `paw.py anonymize --output` wrote (a copy by hand: `original` is the path it
# was given, `folder` the absolute folder the copy is in), before a random part.
BY_HAND = "by-hand-"

_DANGEROUS_START = ("=", "+", "-", "@", "\t", "\r", "\0")


def csv_safe(value):
    """A cell Excel and LibreOffice show as text: newlines flattened, formulas neutralised."""
    text = "" if value is None else str(value)
    text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\0", " ")
    if text.startswith(_DANGEROUS_START):
        text = "'" + text
    return text


class Ledger:
    """The interface every backend implements. The claim methods' defaults are those of a
    single host holding the run's lock: every slide in the inbox is its own."""

    def append(self, row):
        """Record one outcome (a dict of COLUMNS) durably."""
        raise NotImplementedError

    def has_job(self, job, since=None):
        """Whether a row for this job exists (a replay after a crash must not write it twice).
        `since`: what `mark()` returned before the row could have been appended."""
        raise NotImplementedError

    def mark(self):
        """A position before the next row, journaled before a job's row is appended so that
        `has_job` need not read the whole ledger (None where the backend needs none)."""
        return None

    def rows(self, last=None):
        """Every row (or the `last` ones) as dicts of COLUMNS, oldest first."""
        raise NotImplementedError

    def case_pseudonym(self, key, fresh):
        """The case pseudonym of `key` (naming.case_key of the case group's value): the one
        recorded for it, or else `fresh()` (a new pseudonym; called again if the one it gives
        is already another case's), recorded durably before it is returned. Every later call,
        in this run, a later one or on another host, returns the same pseudonym."""
        raise NotImplementedError

    def known_case(self, key):
        """The case pseudonym recorded for `key`, or None; records nothing (a dry run, inspect)."""
        raise NotImplementedError

    def find(self, text):
        """The rows whose original name, output name, pseudonym or case pseudonym holds `text`
        (case-insensitive), and every row of the case whose number `text` is: for returning
        slides to whoever asked for them. Reads the whole ledger, as it goes."""
        wanted = text.casefold()
        case = self.known_case(case_key(text))
        return [row for row in self.rows() if _matches(row, wanted, case)]

    def claim(self, original, job, stage):
        """True if this host may take the slide (nobody else has claimed it)."""
        return True

    def heartbeat(self, job):
        """Refresh this host's claim; False if another host has taken the slide over."""
        return True

    def release(self, job):
        pass

    def take_over_stale(self, stage_for):
        """Claims of hosts that stopped, now this host's: [(job, old stage, new stage)]."""
        return []

    def release_orphans(self, staged_jobs):
        pass

    def close(self):
        pass


SEARCHED = ("original", "output", "pseudonym", "case")


def _matches(row, wanted, case):
    return any(wanted in (row.get(c) or "").casefold() for c in SEARCHED) or \
        bool(case and row.get("case") == case)


def open_ledger(config):
    """The configured backend; PostgreSQL raises LedgerUnavailable if it cannot be reached."""
    if config.postgres_dsn:
        from .postgres import PostgresLedger
        return PostgresLedger(config.postgres_dsn, config.inbox, config.state_dir,
                              config.claim_timeout_seconds)
    from .csvfile import CsvLedger
    return CsvLedger(config.ledger_csv)


def export_csv(ledger, out, rows=None):
    """Every row (or `rows`) as CSV (formula-safe) to a text stream, behind a BOM so that
    Excel reads UTF-8 (the stream's encoding must not add one: plain "utf-8")."""
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in ledger.rows() if rows is None else rows:
        writer.writerow([csv_safe(row.get(c, "")) for c in COLUMNS])
