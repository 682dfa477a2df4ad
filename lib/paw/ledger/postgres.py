"""The PostgreSQL ledger, and claims that let several hosts share one inbox.

Rows have the CSV's columns and the CSV's text, so an export is the same file; `job` is unique
and inserts do nothing on conflict, so a row replayed after a crash is never duplicated.

A slide is claimed in `paw_claims` before it leaves the inbox: the first host to insert the
(inbox, original) row owns it. The claim names the staging folder the slide goes to and is
refreshed at every step (heartbeat); a claim not refreshed for `claim_timeout_seconds` belongs
to a host that died, and another host takes it over: it moves that staging folder into its own
and resumes the journal. Staging therefore has to be on storage every host sees.

Case pseudonyms (naming.case) are rows of `paw_cases`, unique by case key and by pseudonym;
a host inserts its fresh pseudonym with ON CONFLICT DO NOTHING and then reads the row back,
so two hosts seeing a case for the first time at the same moment both get the one that won.
"""

import os
import socket

from ..errors import LedgerUnavailable
from ..naming import case_key
from . import COLUMNS, Ledger, csv_safe

SCHEMA_VERSION = 2
_V1_COLUMNS = ["time_utc", "status", "original", "output", "format", "kept", "removed", "bytes",
               "seconds", "error", "sha256"]
MIGRATIONS = {  # never edited once released: a database is at some version and goes on from it
    1: [
        f"CREATE TABLE paw_ledger (id bigserial PRIMARY KEY, "
        f"{', '.join(c + ' text' for c in _V1_COLUMNS)}, job text NOT NULL UNIQUE)",
        "CREATE TABLE paw_claims (inbox text NOT NULL, original text NOT NULL, job text NOT NULL,"
        " host text NOT NULL, stage text NOT NULL, heartbeat timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (inbox, original))",
    ],
    2: [
        'ALTER TABLE paw_ledger ADD COLUMN pseudonym text, ADD COLUMN "case" text, ADD COLUMN folder text',
        "CREATE TABLE paw_cases (case_key text PRIMARY KEY, pseudonym text NOT NULL UNIQUE,"
        " created timestamptz NOT NULL DEFAULT now())",
    ],
}
_COLUMNS = ", ".join(f'"{c}"' for c in COLUMNS)  # quoted: "case" is an SQL keyword


def _one_line(exc):
    return " ".join(str(exc).split())[:200] or type(exc).__name__


class PostgresLedger(Ledger):
    def __init__(self, dsn, inbox, state_dir, claim_timeout):
        import psycopg

        self.inbox = inbox
        self.host = f"{socket.gethostname()}:{os.path.abspath(state_dir)}"
        self.timeout = claim_timeout
        try:
            self.db = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
            self._migrate()
        except psycopg.Error as exc:
            raise LedgerUnavailable(f"ledger database unreachable: {_one_line(exc)}") from None

    def _migrate(self):
        with self.db.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(hashtext('paw-ledger-schema'))")
            self.db.execute("CREATE TABLE IF NOT EXISTS paw_schema (version integer NOT NULL)")
            row = self.db.execute("SELECT max(version) FROM paw_schema").fetchone()
            current = row[0] or 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    self.db.execute(statement)
                self.db.execute("INSERT INTO paw_schema (version) VALUES (%s)", (version,))

    # --- the ledger interface -------------------------------------------------------------------

    def append(self, row):
        values = [csv_safe(row.get(c, "")) for c in COLUMNS]
        self.db.execute(f"INSERT INTO paw_ledger ({_COLUMNS}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
                        " ON CONFLICT (job) DO NOTHING", values)

    def has_job(self, job, since=None):
        return self.db.execute("SELECT 1 FROM paw_ledger WHERE job = %s", (job,)).fetchone() is not None

    def rows(self, last=None):
        if last:
            query = (f"SELECT {_COLUMNS} FROM (SELECT id, {_COLUMNS} FROM paw_ledger ORDER BY id DESC"
                     " LIMIT %s) AS recent ORDER BY id")
            found = self.db.execute(query, (last,)).fetchall()
        else:
            found = self.db.execute(f"SELECT {_COLUMNS} FROM paw_ledger ORDER BY id").fetchall()
        # Rows of an older paw have no value in the newer columns: "" as in the CSV.
        return [{c: "" if v is None else v for c, v in zip(COLUMNS, r)} for r in found]

    def case_pseudonym(self, key, fresh):
        import psycopg

        try:
            for _ in range(5):  # a second round only if `fresh` gave another case's pseudonym
                row = self.db.execute("SELECT pseudonym FROM paw_cases WHERE case_key = %s", (key,)).fetchone()
                if row:
                    return row[0]
                self.db.execute("INSERT INTO paw_cases (case_key, pseudonym) VALUES (%s, %s)"
                                " ON CONFLICT DO NOTHING", (key, fresh()))
        except psycopg.Error as exc:
            raise LedgerUnavailable(f"ledger database unreachable: {_one_line(exc)}") from None
        raise LedgerUnavailable("paw_cases refused 5 fresh case pseudonyms in a row (all taken?)")

    def known_case(self, key):
        import psycopg

        try:
            row = self.db.execute("SELECT pseudonym FROM paw_cases WHERE case_key = %s", (key,)).fetchone()
        except psycopg.Error as exc:
            raise LedgerUnavailable(f"ledger database unreachable: {_one_line(exc)}") from None
        return row[0] if row else None

    def find(self, text):
        """Searched by the server (a case-insensitive match on the same columns)."""
        case = self.known_case(case_key(text))
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = self.db.execute(
            f"SELECT {_COLUMNS} FROM paw_ledger WHERE original ILIKE %s OR output ILIKE %s"
            ' OR pseudonym ILIKE %s OR "case" ILIKE %s OR (%s <> \'\' AND "case" = %s) ORDER BY id',
            (pattern, pattern, pattern, pattern, case or "", case or "")).fetchall()
        return [{c: "" if v is None else v for c, v in zip(COLUMNS, r)} for r in found]

    # --- claims ---------------------------------------------------------------------------------

    def claim(self, original, job, stage):
        """True if this host now owns the slide (nobody had claimed it)."""
        row = self.db.execute(
            "INSERT INTO paw_claims (inbox, original, job, host, stage) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING RETURNING job", (self.inbox, original, job, self.host, stage)).fetchone()
        return row is not None

    def heartbeat(self, job):
        """Refresh this host's claim; False if another host has taken the slide over."""
        cursor = self.db.execute("UPDATE paw_claims SET heartbeat = now() WHERE job = %s AND host = %s",
                                 (job, self.host))
        return cursor.rowcount == 1

    def release(self, job):
        self.db.execute("DELETE FROM paw_claims WHERE job = %s", (job,))

    def take_over_stale(self, stage_for):
        """Claims whose host stopped refreshing them, now ours: [(job, old stage, new stage)]."""
        rows = self.db.execute(
            "SELECT job, stage FROM paw_claims WHERE inbox = %s AND host <> %s"
            " AND heartbeat < now() - make_interval(secs => %s)",
            (self.inbox, self.host, self.timeout)).fetchall()
        taken = []
        for job, old_stage in rows:
            new_stage = stage_for(job)
            cursor = self.db.execute(
                "UPDATE paw_claims SET host = %s, stage = %s, heartbeat = now() WHERE job = %s"
                " AND heartbeat < now() - make_interval(secs => %s)",
                (self.host, new_stage, job, self.timeout))
            if cursor.rowcount == 1:
                taken.append((job, old_stage, new_stage))
        return taken

    def release_orphans(self, staged_jobs):
        """Drop this host's claims for slides that never reached its staging (crash between the
        claim and the move): the slide is still in the inbox and will be claimed afresh."""
        self.db.execute("DELETE FROM paw_claims WHERE inbox = %s AND host = %s AND NOT (job = ANY(%s))",
                        (self.inbox, self.host, list(staged_jobs)))

    def close(self):
        self.db.close()
