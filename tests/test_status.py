"""What the technician and the admin see: `status` explains every slide that waits (and when it
will be taken), the dry run predicts each slide's outcome, and the status page shows both in a
real browser with the same counts as `status --json`."""

import json
import os
import re
import shutil
import stat
import subprocess
import time
from html.parser import HTMLParser

import pytest

from checks import refuse_claims
from synth import aperio

CASES = ("naming: {pattern: '(?P<specimen>S\\d\\d-\\d+) (?P<block>[A-Z]\\d*) (?P<stain>\\w+)', "
         "case: specimen, template: '{case}_{block}_{stain}'}\n")


def status_json(lab, capsys):
    capsys.readouterr()
    lab.run("status", "--json")
    return json.loads(capsys.readouterr().out)


def by_path(info):
    return {s["path"]: s for s in info["slides"]}


def write_runs(lab, times):
    """A run history as cron would leave it (status estimates the schedule from it)."""
    os.makedirs(lab.state, exist_ok=True)
    with open(os.path.join(lab.state, "runs.jsonl"), "w") as fh:
        for t in times:
            fh.write(json.dumps({"time": t, "anonymized": 0, "quarantined": 0, "failed": 0,
                                 "waiting": 1, "held": 0, "bytes": 0, "seconds": 0.1}) + "\n")


# --- status: every waiting slide, why, and when ------------------------------------------------

def test_status_says_why_each_slide_waits_and_when_it_will_be_taken(lab, capsys):
    lab.write_config(min_age=600, runs=3)
    old = os.path.join(lab.inbox, "old.svs")
    aperio.write(old)
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert lab.run() == 0                                   # old.svs: seen 1 of 3
    aperio.write(os.path.join(lab.inbox, "fresh.svs"))      # new since that run, and young
    with open(old, "ab") as fh:                             # and old.svs grows: changed
        fh.write(b"more")
    growing_info = status_json(lab, capsys)
    slides = by_path(growing_info)
    assert slides["old.svs"]["why"] == ["changed"] and not slides["old.svs"]["ready"]
    assert "changed since the last run (still being copied or saved?)" in slides["old.svs"]["text"]
    assert slides["old.svs"]["expected_at"] is None          # unknown while it keeps changing
    assert "new" in slides["fresh.svs"]["why"] and "young" in slides["fresh.svs"]["why"]
    assert "too young until" in slides["fresh.svs"]["text"]
    assert growing_info["inbox"] == {"slides": 2, "stable": 0, "waiting": 2, "listed": 2}

    assert lab.run() == 0                                   # both seen once unchanged now
    write_runs(lab, [time.time() - 600, time.time() - 300, time.time()])  # every 5 minutes
    info = status_json(lab, capsys)
    slides = by_path(info)
    assert slides["old.svs"]["why"] == ["runs", "young"] and slides["old.svs"]["runs_seen"] == 1
    assert "seen unchanged in 1 of 3 runs: taken after 2 more runs if it stays so" in slides["old.svs"]["text"]
    assert slides["old.svs"]["expected_at"] == pytest.approx(time.time() + 600, abs=5)
    assert info["schedule"]["interval_seconds"] == 300
    fresh = slides["fresh.svs"]
    assert fresh["old_enough_at"] == pytest.approx(os.stat(os.path.join(lab.inbox, "fresh.svs")).st_mtime + 600,
                                                   abs=2)
    assert fresh["expected_at"] >= fresh["old_enough_at"] and "expected about" in fresh["text"]
    capsys.readouterr()
    assert lab.run("status") == 0
    out = capsys.readouterr().out
    assert "inbox: 2 slides (0 ready for the next run, 2 waiting)" in out
    assert "  old.svs: seen unchanged in 1 of 3 runs" in out and "runs about every 5 min" in out


def test_status_ready_dated_in_the_future_and_runs_that_stopped(lab, capsys):
    lab.write_config(min_age=0, runs=2)
    future = os.path.join(lab.inbox, "future.svs")
    aperio.write(future)
    ahead = time.time() + 7200
    os.utime(future, (ahead, ahead))
    lab.write_config(min_age=3600, runs=2)  # the file's own time cannot make it old
    assert lab.run() == 0
    slides = by_path(status_json(lab, capsys))
    assert "future" in slides["future.svs"]["why"] and "ahead of this host's clock" in slides["future.svs"]["text"]
    assert slides["future.svs"]["old_enough_at"] == pytest.approx(time.time() + 3600, abs=5)

    lab.write_config(min_age=0, runs=2)
    write_runs(lab, [time.time() - 7200, time.time() - 6900])  # last run two hours ago, every 5 min
    os.utime(future)
    stability = os.path.join(lab.state, "stability.json")
    os.remove(stability)
    main_lab_run = lab.run()  # records the slide: the next run takes it
    assert main_lab_run == 0
    info = status_json(lab, capsys)
    assert by_path(info)["future.svs"]["ready"] and by_path(info)["future.svs"]["why"] == ["ready"]
    assert info["inbox"]["stable"] == 1
    write_runs(lab, [time.time() - 7200, time.time() - 6900])
    assert status_json(lab, capsys)["schedule"]["late"] is True
    capsys.readouterr()
    lab.run("status")
    assert "runs seem to have stopped" in capsys.readouterr().out


def test_status_lists_slides_left_in_the_inbox_and_unreadable_folders(lab):
    """A folder paw's user may read but not change: its slide is never claimed (#16b) and
    status says why, with owner, mode and fix; an unreadable folder is listed as skipped."""
    from test_filesystem import run_without_override
    locked = os.path.join(lab.inbox, "locked")
    os.mkdir(locked)
    aperio.write(os.path.join(locked, "x.svs"))
    secret = os.path.join(lab.inbox, "secret")
    os.mkdir(secret)
    os.chmod(locked, 0o555)
    os.chmod(secret, 0o000)
    try:
        run_without_override(lab)
        info = json.loads(run_without_override(lab, "status", "--json").stdout)
        text = run_without_override(lab, "status").stdout
    finally:
        os.chmod(locked, 0o755)
        os.chmod(secret, 0o755)
    left = by_path(info)["locked/x.svs"]
    assert left["why"] == ["unwritable"] and not left["ready"]
    assert "left in the inbox: paw's user root (uid 0) cannot move it out of the folder locked " \
           "(owner root, mode 0555); run paw as the shares' owner" in left["text"]
    assert info["attention"]["skipped"] == [{"path": "secret", "reason": "Permission denied"}]
    assert "left in the inbox: locked/x.svs" in text and "skipped in the inbox: secret" in text


def test_status_lists_slides_stuck_after_failed_claims(lab, monkeypatch, capsys):
    """A claim the system refuses although the folder looks writable (an ACL, a race): counted,
    then left alone after 3 attempts; status says which and how to try again."""
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    refuse_claims(monkeypatch, lab.inbox)
    lab.run()
    first = status_json(lab, capsys)
    for _ in range(2):
        lab.run()
    held = status_json(lab, capsys)
    capsys.readouterr()
    lab.run("status")
    text = capsys.readouterr().out
    assert by_path(first)["x.svs"]["why"] == ["claim_failed"]
    assert "could not be taken from the inbox (1 of 3 attempts: Permission denied" in \
        by_path(first)["x.svs"]["text"]
    stuck = by_path(held)["x.svs"]
    assert stuck["why"] == ["held"] and not stuck["ready"] and stuck["expected_at"] is None
    assert "fix that, then save, rename or touch the file" in stuck["text"]
    assert "left alone after 3 failed attempts" in text


def test_status_text_lists_quarantine_with_reasons_and_how_to_retry(lab, capsys):
    with open(os.path.join(lab.inbox, "consent.pdf"), "wb") as fh:
        fh.write(b"%PDF-1.7\n")
    assert lab.run() == 3
    capsys.readouterr()
    lab.run("status")
    out = capsys.readouterr().out
    assert "  consent.pdf: not a slide (PDF document)" in out
    assert "move it back into the inbox" in out



def test_status_says_unfinished_jobs_are_resumed_and_where_to_look_when_they_fail(lab, capsys):
    os.makedirs(os.path.join(lab.state, "staging", "0123456789abcdef"))
    lab.run("status")
    out = capsys.readouterr().out
    assert "staging: 1 unfinished jobs (each run resumes them; when the log says 'could not finish a slide'" in out

# --- the dry run predicts -----------------------------------------------------------------------

def test_dry_run_predicts_each_outcome_and_writes_nothing(lab, capsys):
    lab.write_config(extra=CASES)
    os.mkdir(os.path.join(lab.inbox, "ProjectA"))
    aperio.write(os.path.join(lab.inbox, "ProjectA", "S26-1 A1 HE.svs"))
    aperio.write(os.path.join(lab.inbox, "ProjectA", "S26-1 B2 PAS.svs"))
    aperio.write(os.path.join(lab.inbox, "cmu-1-small-region.svs"))
    with open(os.path.join(lab.inbox, "consent.pdf"), "wb") as fh:
        fh.write(b"%PDF-1.4\n")
    aperio.write(os.path.join(lab.base, "whole.svs"))
    with open(os.path.join(lab.base, "whole.svs"), "rb") as fh:
        half = fh.read()[:40000]
    with open(os.path.join(lab.inbox, "S26-2 A1 HE.svs"), "wb") as fh:
        fh.write(half)
    before = _tree(lab.base)
    capsys.readouterr()
    assert lab.run("--dry-run") == 0
    out = capsys.readouterr().out
    assert _tree(lab.base) == before and not os.path.exists(lab.state)   # nothing written, not even state
    [a1] = [x for x in out.splitlines() if x.startswith("would deliver ProjectA/S26-1 A1 HE.svs")]
    [b2] = [x for x in out.splitlines() if x.startswith("would deliver ProjectA/S26-1 B2 PAS.svs")]
    case = re.search(r"-> outbox/ProjectA/(PAW-\w+)_A1_HE\.svs", a1).group(1)
    assert f"-> outbox/ProjectA/{case}_B2_PAS.svs" in b2   # one example case pseudonym per case
    assert ", an example for a new case)" in a1 and "Aperio SVS" in a1
    assert ("would quarantine cmu-1-small-region.svs -> quarantine/cmu-1-small-region.svs: name "
            "'cmu-1-small-region' does not match naming.pattern") in out
    assert "would quarantine consent.pdf -> quarantine/consent.pdf: not a slide (PDF document)" in out
    assert "would quarantine S26-2 A1 HE.svs -> quarantine/S26-2 A1 HE.svs: incomplete file: 40 kB of an " \
           "Aperio SVS slide; was it still being copied?" in out
    assert out.rstrip().endswith("dry run: 2 would be delivered, 3 quarantined, 0 waiting; nothing was changed")

    assert lab.run() == 3   # the real run does what the dry run said
    rows = {r["original"]: r for r in lab.rows()}
    assert rows["consent.pdf"]["error"] == "not a slide (PDF document)"
    assert rows["ProjectA/S26-1 A1 HE.svs"]["status"] == "anonymized"
    known = rows["ProjectA/S26-1 A1 HE.svs"]["case"]
    aperio.write(os.path.join(lab.inbox, "S26-1 C3 HE.svs"))   # the same case, later
    capsys.readouterr()
    lab.run("--dry-run")
    out = capsys.readouterr().out
    assert f"-> outbox/{known}_C3_HE.svs" in out and f"case pseudonym {known} from the ledger" in out


def test_dry_run_lists_waiting_slides_and_stops_like_a_run_when_not_ready(lab, capsys):
    lab.write_config(runs=2)
    aperio.write(os.path.join(lab.inbox, "new.svs"))
    capsys.readouterr()
    assert lab.run("--dry-run") == 0
    out = capsys.readouterr().out
    assert "waiting: new.svs: new since the last run: taken once it stays unchanged for 2 runs" in out
    assert "0 would be delivered, 0 quarantined, 1 waiting" in out
    shutil.rmtree(lab.outbox)
    assert lab.run("--dry-run") == 2
    assert "not ready: outbox: folder" in capsys.readouterr().out


def _tree(base):
    found = {}
    for root, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(root, name)
            info = os.lstat(path)
            found[path] = (info.st_size, info.st_mtime_ns, info.st_mode)
    return found


# --- retry: a slide moved back from the quarantine with its reason ----------------------------

def test_a_slide_moved_back_with_its_reason_file_is_processed_and_the_reason_removed(lab, capsys):
    lab.write_config(extra=CASES)
    aperio.write(os.path.join(lab.inbox, "case 12.svs"))
    assert lab.run() == 3
    assert "does not match naming.pattern" in lab.rows()[0]["error"]
    # The technician renames it to fit the pattern and moves it back with its reason file.
    os.rename(os.path.join(lab.quarantine, "case 12.svs"), os.path.join(lab.inbox, "S26-12 A1 HE.svs"))
    os.rename(os.path.join(lab.quarantine, "case 12.svs.reason.txt"),
              os.path.join(lab.inbox, "S26-12 A1 HE.svs.reason.txt"))
    status = status_json(lab, capsys)
    assert [s["path"] for s in status["slides"]] == ["S26-12 A1 HE.svs"]  # the reason file is no slide
    assert lab.run() == 0
    assert os.listdir(lab.inbox) == [] and os.listdir(lab.quarantine) == []
    assert [r["status"] for r in lab.rows()] == ["quarantined", "anonymized"]


def test_reason_files_in_the_inbox_are_never_slides_and_only_small_lone_ones_are_removed(lab):
    os.mkdir(os.path.join(lab.inbox, "sub"))
    with open(os.path.join(lab.inbox, "sub", "gone.svs.reason.txt"), "w") as fh:
        fh.write("not a slide (PDF document)\n")
    big = os.path.join(lab.inbox, "notes.reason.txt")
    with open(big, "wb") as fh:
        fh.write(b"x" * 10000)  # not paw's: too large to be a reason line
    os.symlink("/etc/hostname", os.path.join(lab.inbox, "link.svs.reason.txt"))
    aperio.write(os.path.join(lab.inbox, "waiting.svs"))
    with open(os.path.join(lab.inbox, "waiting.svs.reason.txt"), "w") as fh:
        fh.write("incomplete file\n")
    lab.write_config(min_age=3600)
    assert lab.run() == 0
    assert sorted(os.listdir(lab.inbox)) == ["link.svs.reason.txt", "notes.reason.txt", "sub", "waiting.svs",
                                             "waiting.svs.reason.txt"]
    assert os.listdir(os.path.join(lab.inbox, "sub")) == [] and lab.rows() == [] and lab.quarantined() == []
    lab.write_config(min_age=0)
    assert lab.run() == 0
    assert sorted(os.listdir(lab.inbox)) == ["link.svs.reason.txt", "notes.reason.txt", "sub"]


# --- the status page ----------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1200,1600"]


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")


def render(page, folder):
    """The page as a real browser shows it: its DOM after loading, and a screenshot."""
    browser = chromium()
    profile = os.path.join(folder, "profile")
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}-dom", "--dump-dom",
                          "file://" + page], capture_output=True, text=True, timeout=120)
    shot = os.path.join(folder, "page.png")
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}-png", f"--screenshot={shot}",
                    "file://" + page], capture_output=True, timeout=120)
    return dom.stdout, shot


class Page(HTMLParser):
    """Element texts by id, and how many elements carry each class, from the DOM Chromium dumps."""

    def __init__(self, dom):
        super().__init__()
        self.ids, self.classes, self.attrs, self._open = {}, {}, [], []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.attrs.append((tag, attrs))
        for name in (attrs.get("class") or "").split():
            self.classes[name] = self.classes.get(name, 0) + 1
        self._open.append(attrs.get("id"))
        if attrs.get("id"):
            self.ids[attrs["id"]] = ""

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for ident in self._open:
            if ident:
                self.ids[ident] += data


def test_status_page_renders_in_a_browser_with_the_counts_of_status_json(lab, capsys, tmp_path):
    share = tmp_path / "staff-share"
    share.mkdir()
    page = str(share / "paw-status.html")
    lab.write_config(runs=2, extra=CASES + f"report: {{html: '{page}'}}\n")
    os.mkdir(os.path.join(lab.inbox, "ProjectA"))
    aperio.write(os.path.join(lab.inbox, "ProjectA", "S26-3 A1 HE.svs"))
    aperio.write(os.path.join(lab.inbox, "S26-4 A1 HE.svs"))
    with open(os.path.join(lab.inbox, "consent.pdf"), "wb") as fh:
        fh.write(b"%PDF-1.4\n")
    with open(os.path.join(lab.inbox, "<i>odd & name.svs"), "wb") as fh:
        fh.write(b"PK\x03\x04word/document.xml")
    assert lab.run() == 0   # first sighting: everything waits
    assert lab.run() == 3   # taken: two delivered, two quarantined
    aperio.write(os.path.join(lab.inbox, "S26-5 B1 HE.svs"))    # arrives after the run: waits
    assert lab.run() == 0
    assert stat.S_IMODE(os.stat(page).st_mode) == 0o640
    info = status_json(lab, capsys)
    dom, shot = render(page, str(tmp_path))
    seen = Page(dom)
    assert int(seen.ids["inbox-count"]) == info["inbox"]["slides"] == 1
    assert int(seen.ids["waiting-count"]) == info["inbox"]["waiting"]
    assert int(seen.ids["ready-count"]) == info["inbox"]["stable"] == 1
    assert int(seen.ids["quarantine-count"]) == len(info["quarantine"]) == 2
    assert seen.classes["quarantined"] == 2 and seen.classes["slide"] == 1
    assert seen.classes["outcome"] == len(info["last_outcomes"]) == 4
    assert int(seen.ids["delivered-today"]) == info["per_day"][-1]["anonymized"] == 2
    assert int(seen.ids["quarantined-today"]) == info["per_day"][-1]["quarantined"] == 2
    days = [a for tag, a in seen.attrs if "day" in (a.get("class") or "").split()]
    assert [(d["data-date"], int(d["data-delivered"]), int(d["data-quarantined"])) for d in days] == \
        [(d["date"], d["anonymized"], d["quarantined"]) for d in info["per_day"]]
    assert "S26-5 B1 HE.svs" in seen.ids["waiting"] and "not a slide (PDF document)" in seen.ids["quarantine"]
    assert "<i>odd & name.svs" in seen.ids["quarantine"]  # shown as text, never as markup
    assert not any(tag == "i" for tag, _ in seen.attrs)
    assert not any(tag in ("script", "img", "link", "iframe") for tag, _ in seen.attrs)
    assert not re.search(r"(src|href)=", open(page).read())  # nothing fetched from anywhere
    with open(shot, "rb") as fh:
        png = fh.read()
    assert png.startswith(b"\x89PNG") and len(png) > 20000  # a rendered page, not a blank one


def test_status_page_is_rewritten_only_when_something_changed_or_a_minute_passed(lab, tmp_path):
    page = str(tmp_path / "status.html")
    lab.write_config(min_age=3600, extra=f"report: {{html: '{page}', mode: '0644'}}\n")
    aperio.write(os.path.join(lab.inbox, "young.svs"))
    write_runs(lab, [time.time() - 900, time.time() - 600, time.time() - 300])  # every 5 minutes
    assert lab.run() == 0
    assert stat.S_IMODE(os.stat(page).st_mode) == 0o644
    first = os.stat(page).st_mtime_ns
    time.sleep(0.02)
    assert lab.run() == 0                       # an idle tick, nothing new to show
    assert os.stat(page).st_mtime_ns == first
    record = os.path.join(lab.state, "report.json")
    with open(record) as fh:
        state = json.load(fh)
    state["written"] -= 61                       # a minute later: refreshed (its "last run" time)
    with open(record, "w") as fh:
        json.dump(state, fh)
    assert lab.run() == 0
    second = os.stat(page).st_mtime_ns
    assert second != first
    aperio.write(os.path.join(lab.inbox, "another.svs"))   # something new: written at once
    assert lab.run() == 0
    assert os.stat(page).st_mtime_ns != second and "another.svs" in open(page).read()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".paw-partial")]


@pytest.mark.parametrize("where", ["outbox", "inbox", "outbox/sub"])
def test_status_page_inside_outbox_or_inbox_is_refused(lab, where):
    lab.write_config(extra=f"report: {{html: '{os.path.join(lab.base, where, 'status.html')}'}}\n")
    result = lab.run_subprocess()
    assert result.returncode == 2
    assert f"'report.html' must not be inside '{where.split('/')[0]}'" in result.stderr


def test_status_page_in_the_quarantine_is_not_listed_as_quarantined(lab, capsys):
    page = os.path.join(lab.quarantine, "paw-status.html")
    lab.write_config(extra=f"report: {{html: '{page}'}}\n")
    with open(os.path.join(lab.inbox, "a.pdf"), "wb") as fh:
        fh.write(b"%PDF-1.4\n")
    assert lab.run() == 3 and os.path.exists(page)
    assert [q["name"] for q in status_json(lab, capsys)["quarantine"]] == ["a.pdf"]


def test_a_status_page_that_cannot_be_written_never_fails_the_run(lab, tmp_path):
    page = str(tmp_path / "missing-folder" / "status.html")
    lab.write_config(extra=f"report: {{html: '{page}'}}\n")
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    result = lab.run_subprocess()
    assert result.returncode == 0 and len(lab.outbox_files()) == 1
    assert "could not write the status page (report.html): No such file or directory" in result.stderr


def test_an_idle_tick_writing_the_page_imports_no_parsing_code(lab, tmp_path):
    import sys
    from conftest import ROOT
    with open(os.path.join(lab.inbox, "arriving.svs"), "wb") as fh:
        fh.write(b"x")
    page = str(tmp_path / "status.html")
    lab.write_config(min_age=3600, extra=f"report: {{html: '{page}'}}\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from paw.cli import main; "
            "rc = main(['--config', sys.argv[2], '-q']); "
            "print(rc, sorted(m for m in ('numpy', 'tifffile', 'paw.slide', 'paw.formats') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "lib"), lab.config],
                            capture_output=True, text=True)
    assert result.stdout.strip() == "0 []", result.stdout + result.stderr
    assert "arriving.svs" in open(page).read()
