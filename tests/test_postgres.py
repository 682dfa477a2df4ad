"""The PostgreSQL ledger against a real server (`.ci/run` installs and starts Debian's).

PAW_TEST_POSTGRES is an admin connection string; each test gets a database of its own.
PAW_TEST_POSTGRES_CLUSTER ("15 main") lets a test stop and start the server.
"""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from checks import leaked
from conftest import ROOT, Lab
from synth import aperio

ADMIN = os.environ.get("PAW_TEST_POSTGRES")
if not ADMIN:
    if os.environ.get("CI"):
        raise RuntimeError("PAW_TEST_POSTGRES is not set: .ci/run must start PostgreSQL")
    pytest.skip("no PostgreSQL for tests (set PAW_TEST_POSTGRES)", allow_module_level=True)

psycopg = pytest.importorskip("psycopg")
VOLATILE = ("id", "time_utc", "job", "output", "seconds", "pseudonym")  # differ between any two runs
CASES = ("naming:\n  pattern: '(?P<specimen>S\\d\\d-\\d+) (?P<block>[A-Z]\\d*) (?P<stain>\\w+)'\n"
         "  case: specimen\n  template: '{case}_{block}_{stain}'\n")


@pytest.fixture
def database():
    name = f"paw_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield ADMIN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pg_lab(base, dsn, timeout=3600, state="state", extra=""):
    """A host: its own config and state dir; hosts made on one `base` share inbox and outbox."""
    lab = Lab(base)
    lab.config = os.path.join(str(base), f"{state}.yaml")
    lab.state = os.path.join(str(base), state)
    lab.write_config(extra=f"state_dir: {state}\nledger:\n  postgres: {{dsn: '{dsn}', "
                           f"claim_timeout_seconds: {timeout}}}\n{extra}")
    return lab


def ledger_rows(dsn):
    with psycopg.connect(dsn) as db:
        columns = [c.name for c in db.execute("SELECT * FROM paw_ledger LIMIT 0").description]
        return [dict(zip(columns, r)) for r in db.execute("SELECT * FROM paw_ledger ORDER BY id")]


def test_schema_is_created_on_first_use(tmp_path, database):
    lab = pg_lab(tmp_path, database)
    assert lab.run() == 0
    with psycopg.connect(database) as db:
        assert db.execute("SELECT max(version) FROM paw_schema").fetchone() == (2,)
        tables = {r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert {"paw_schema", "paw_ledger", "paw_claims", "paw_cases"} <= tables
    assert lab.run() == 0  # and a second start migrates nothing


def test_rows_are_the_csv_backends_rows(tmp_path, database):
    def inbox(lab):
        aperio.write(os.path.join(lab.inbox, "=S26-1 A1 HE.svs"))
        with open(os.path.join(lab.inbox, "broken.svs"), "wb") as fh:
            fh.write(b"junk")

    csv_lab = Lab(tmp_path / "csv")
    inbox(csv_lab)
    pg = pg_lab(tmp_path / "pg", database)
    inbox(pg)
    assert csv_lab.run() == 3 and pg.run() == 3
    strip = lambda rows: sorted([{k: v for k, v in r.items() if k not in VOLATILE} for r in rows],  # noqa: E731
                                key=lambda r: r["original"])
    assert strip(csv_lab.rows()) == strip(ledger_rows(database))
    exported = subprocess.run([sys.executable, os.path.join(ROOT, "paw.py"), "--config", pg.config,
                               "ledger", "export", "--csv"], capture_output=True, encoding="utf-8", check=True)
    assert exported.stdout.startswith("\ufeff")  # the BOM a spreadsheet needs, as in the file export
    assert strip(csv.DictReader(io.StringIO(exported.stdout[1:]))) == strip(csv_lab.rows())
    status = subprocess.run([sys.executable, os.path.join(ROOT, "paw.py"), "--config", pg.config,
                             "status", "--json"], capture_output=True, text=True, check=True)
    outcomes = json.loads(status.stdout)["last_outcomes"]
    assert sorted(o["status"] for o in outcomes) == ["anonymized", "quarantined"]


def test_four_hosts_one_inbox_each_slide_exactly_once(tmp_path, database):
    """200 slides of 50 cases (4 blocks each) in two project folders: every slide once in the
    outbox and the ledger, in its project's folder, and one case pseudonym per case although
    the hosts see the blocks of a case at the same moment."""
    labs = [pg_lab(tmp_path, database, state=f"state-{i}", extra=CASES) for i in range(4)]
    template = os.path.join(tmp_path, "template.svs")
    planted = aperio.write(template, 512, 512)
    originals = []
    for case in range(50):
        project = f"Project{'AB'[case % 2]}"
        os.makedirs(os.path.join(labs[0].inbox, project), exist_ok=True)
        for block in ("A1", "A2", "B1", "B2"):
            originals.append(os.path.join(project, f"S26-{case:04} {block} HE.svs"))
            shutil.copyfile(template, os.path.join(labs[0].inbox, originals[-1]))
    runs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "paw.py"), "--config", lab.config],
                             stderr=subprocess.PIPE, text=True) for lab in labs]
    logs = [p.communicate(timeout=300)[1] for p in runs]
    assert [p.returncode for p in runs] == [0, 0, 0, 0], logs
    worked = [log.count(" anonymized Project") for log in logs]
    assert sum(worked) == 200 and sum(1 for n in worked if n) >= 2, worked  # really concurrent
    outbox = {project: sorted(os.listdir(os.path.join(labs[0].outbox, project)))
              for project in ("ProjectA", "ProjectB")}
    assert sorted(os.listdir(labs[0].outbox)) == ["ProjectA", "ProjectB"]
    assert len(outbox["ProjectA"]) == len(outbox["ProjectB"]) == 100
    assert sorted(os.listdir(os.path.join(labs[0].inbox, p)) for p in outbox) == [[], []]
    rows = ledger_rows(database)
    assert sorted(r["original"] for r in rows) == sorted(originals)
    assert sorted((r["folder"], r["output"]) for r in rows) == sorted((p, n) for p in outbox for n in outbox[p])
    cases = {}
    for row in rows:
        specimen = row["original"].split("/")[1].split()[0]
        cases.setdefault(specimen, set()).add(row["case"])
        assert row["output"] == f"{row['case']}_{row['original'].split()[1]}_HE.svs"
    assert all(len(found) == 1 for found in cases.values()), cases
    assert len({found.pop() for found in cases.values()}) == 50
    with psycopg.connect(database) as db:
        assert db.execute("SELECT count(*) FROM paw_cases").fetchone() == (50,)
        assert db.execute("SELECT count(*) FROM paw_claims").fetchone() == (0,)
    for project in outbox:
        assert not any(leaked(os.path.join(labs[0].outbox, project, n), planted + ["S26-"])
                       for n in outbox[project][:10])


def test_hosts_seeing_a_case_first_at_the_same_moment_agree(tmp_path, database):
    """The race itself, without the pipeline around it: eight connections insert their own fresh
    pseudonym for the same new case at once; all get the one that was recorded."""
    import threading
    from paw.ledger.postgres import PostgresLedger
    hosts = [PostgresLedger(database, str(tmp_path), str(tmp_path / f"state-{i}"), 3600) for i in range(8)]
    for key in [f"s26-{n}" for n in range(10)]:
        start = threading.Barrier(len(hosts))
        got = [None] * len(hosts)

        def sight(i):
            start.wait()
            got[i] = hosts[i].case_pseudonym(key, lambda: f"PAW-{i}-{uuid.uuid4().hex[:8]}")

        threads = [threading.Thread(target=sight, args=(i,)) for i in range(len(hosts))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(got)) == 1 and got[0].startswith("PAW-"), got
        assert hosts[3].case_pseudonym(key, lambda: "PAW-LATER") == got[0]  # and in a later run
    # A fresh pseudonym that is already another case's is never given out twice.
    taken = hosts[0].case_pseudonym("s26-0", lambda: "unused")
    fresh = iter([taken, "PAW-NEW"])
    assert hosts[1].case_pseudonym("s26-new", lambda: next(fresh)) == "PAW-NEW"
    for host in hosts:
        host.close()


def test_a_ledger_of_schema_1_is_migrated_and_keeps_its_rows(tmp_path, database):
    from paw.ledger import postgres
    with psycopg.connect(database, autocommit=True) as db:
        db.execute("CREATE TABLE paw_schema (version integer NOT NULL)")
        for statement in postgres.MIGRATIONS[1]:
            db.execute(statement)
        db.execute("INSERT INTO paw_schema VALUES (1)")
        db.execute("INSERT INTO paw_ledger (job, status, original, output) VALUES "
                   "('old-job', 'anonymized', 'S26-1 A1 HE.svs', 'PAW-OLD.svs')")
    lab = pg_lab(tmp_path, database, extra=CASES)
    aperio.write(os.path.join(lab.inbox, "S26-2 A1 HE.svs"))
    assert lab.run() == 0
    rows = ledger_rows(database)
    assert [r["job"] for r in rows][0] == "old-job" and rows[0]["case"] is None
    assert rows[1]["case"].startswith("PAW-") and rows[1]["output"] == rows[1]["case"] + "_A1_HE.svs"
    exported = subprocess.run([sys.executable, os.path.join(ROOT, "paw.py"), "--config", lab.config,
                               "ledger", "export", "--csv"], capture_output=True, encoding="utf-8-sig", check=True)
    old, new = csv.DictReader(io.StringIO(exported.stdout))
    assert (old["output"], old["case"], old["folder"]) == ("PAW-OLD.svs", "", "")
    assert new["case"] == rows[1]["case"] and new["pseudonym"] == rows[1]["pseudonym"]


def test_a_host_killed_mid_slide_is_taken_over_after_the_timeout(tmp_path, database):
    dead = pg_lab(tmp_path, database, timeout=3, state="state-dead")
    alive = pg_lab(tmp_path, database, timeout=3, state="state-alive")
    planted = aperio.write(os.path.join(dead.inbox, "S26-9 A1 HE.svs"))
    env = dict(os.environ, PAW_CRASH_POINT="after-apply")
    crashed = dead.run_subprocess(env=env, wrapper=os.path.join(ROOT, "tests", "crashrun.py"))
    assert crashed.returncode == -signal.SIGKILL
    assert alive.run() == 0 and alive.outbox_files() == []   # the claim is still fresh
    time.sleep(3.5)
    assert alive.run() == 0
    [output] = alive.outbox_files()
    assert leaked(os.path.join(alive.outbox, output), planted) == []
    assert [r["original"] for r in ledger_rows(database)] == ["S26-9 A1 HE.svs"]
    assert os.listdir(os.path.join(tmp_path, "state-dead", "staging")) == []
    assert dead.run() == 0 and len(ledger_rows(database)) == 1  # the dead host, back: nothing to do


def test_database_down_at_start_claims_and_moves_nothing(tmp_path):
    lab = pg_lab(tmp_path, "postgresql://postgres:wrong@127.0.0.1:1/none")
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    result = lab.run_subprocess()
    assert result.returncode == 2  # preflight: nothing is claimed before the ledger can take a row
    assert result.stderr.strip().count("\n") == 0 and "ledger database unreachable" in result.stderr
    assert "check ledger.postgres.dsn" in result.stderr
    assert os.listdir(lab.inbox) == ["x.svs"] and lab.staging() == []


def test_database_stopped_mid_run_loses_and_duplicates_nothing(tmp_path, database):
    cluster = os.environ.get("PAW_TEST_POSTGRES_CLUSTER")
    if not cluster:
        pytest.skip("PAW_TEST_POSTGRES_CLUSTER not set: cannot stop the server")
    lab = pg_lab(tmp_path, database)
    for i in range(3):
        aperio.write(os.path.join(lab.inbox, f"S26-{i} A1 HE.svs"))
    stop = ["pg_ctlcluster", *cluster.split(), "stop", "-m", "immediate"]
    start = ["pg_ctlcluster", *cluster.split(), "start"]
    # The server goes down while the first slide is being delivered.
    code = (f"import subprocess, sys; sys.path.insert(0, {os.path.join(ROOT, 'lib')!r}); "
            "from paw import slide; real = slide._deliver\n"
            "def deliver(*a):\n"
            f"    subprocess.run({stop!r}, check=True); slide._deliver = real; return real(*a)\n"
            "slide._deliver = deliver\n"
            f"from paw.cli import main; sys.exit(main(['--config', {lab.config!r}]))")
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(start, check=True)
    assert result.returncode == 1, result.stderr
    assert len(lab.outbox_files()) == 1 and len(lab.staging()) == 1  # delivered, row pending
    for _ in range(50):
        try:
            psycopg.connect(database).close()
            break
        except psycopg.OperationalError:
            time.sleep(0.2)
    assert lab.run() == 0
    rows = ledger_rows(database)
    assert sorted(r["original"] for r in rows) == [f"S26-{i} A1 HE.svs" for i in range(3)]
    assert len(lab.outbox_files()) == 3 and lab.staging() == [] and os.listdir(lab.inbox) == []


def test_a_copy_by_hand_takes_the_case_pseudonym_from_the_database_and_gets_a_row(tmp_path, database):
    pattern = r"'(?P<specimen>[A-Z]\d\d-\d+)\s+(?P<block>[A-Z]\d*)\s+(?P<stain>\w+)'"
    lab = pg_lab(tmp_path, database, extra=f"naming:\n  pattern: {pattern}\n  case: specimen\n"
                                           "  template: '{case}_{block}_{stain}'\n")
    aperio.write(os.path.join(lab.inbox, "S26-1 A1 HE.svs"))
    assert lab.run() == 0
    out = tmp_path / "manual"
    out.mkdir()
    source = os.path.join(lab.base, "S26-1 B2 PAS.svs")
    aperio.write(source)
    assert lab.run("anonymize", "--output", str(out), source) == 0
    run, by_hand = ledger_rows(database)
    assert os.listdir(out) == [f"{run['case']}_B2_PAS.svs"] == [by_hand["output"]]
    assert by_hand["job"].startswith("by-hand-") and (by_hand["original"], by_hand["folder"]) == (source, str(out))
