"""The ledger at scale and the digest: nothing per slide reads the whole CSV; the SHA-256 is made
inside the bounded step, before delivery, and is the delivered slide's."""

import hashlib
import os
import time

from synth import aperio


def _rows(n, job_prefix="job"):
    from paw.ledger import COLUMNS
    header = ",".join(COLUMNS) + "\r\n"
    row = "2026-01-01T00:00:00+00:00,{job},anonymized,S26-{i} A1 HE.svs,PAW-0000000000.svs,aperio,," \
          "label image destroyed,123456,0.100,,\r\n"
    return "\ufeff" + header + "".join(row.format(job=f"{job_prefix}{i:012}", i=i) for i in range(n))


def test_has_job_reads_only_from_the_journaled_mark(tmp_path):
    from paw.ledger.csvfile import CsvLedger
    path = tmp_path / "ledger.csv"
    path.write_text(_rows(1000), encoding="utf-8")
    ledger = CsvLedger(str(path))
    mark = ledger.mark()
    assert ledger.has_job("job000000000500")                  # no mark: the whole file
    assert not ledger.has_job("job000000000500", since=mark)  # from the mark: only what follows
    ledger.append({"job": "job000000000500", "status": "quarantined", "original": "again.svs"})
    assert ledger.has_job("job000000000500", since=mark)
    assert ledger.has_job("job000000000500", since=10 ** 12)  # a mark past the end: replaced ledger


def test_has_job_costs_the_same_on_a_large_ledger(tmp_path):
    """100,000 rows: with the mark, has_job is as fast as on an empty ledger (it used to read
    the whole file for every slide: +0.8 s per slide at this size)."""
    from paw.ledger.csvfile import CsvLedger
    path = tmp_path / "ledger.csv"
    path.write_text(_rows(100_000), encoding="utf-8")
    ledger = CsvLedger(str(path))
    mark = ledger.mark()
    ledger.append({"job": "new", "status": "anonymized"})
    started = time.perf_counter()
    for _ in range(20):
        assert ledger.has_job("new", since=mark)
    assert (time.perf_counter() - started) / 20 < 0.005


def test_the_last_rows_are_read_from_the_end(tmp_path):
    from paw.ledger.csvfile import CsvLedger
    path = tmp_path / "ledger.csv"
    path.write_text(_rows(5000), encoding="utf-8")
    ledger = CsvLedger(str(path))
    ledger.append({"job": "ü-last", "original": "S26-ä \"quoted\", with comma.svs", "status": "quarantined"})
    full = ledger.rows()
    for n in (1, 2, 10, 5001, 6000):
        assert ledger.rows(last=n) == full[-n:]
    assert ledger.rows(last=1)[0]["original"] == "S26-ä \"quoted\", with comma.svs"


def test_a_run_on_a_large_ledger_records_each_job_once(lab):
    """The mark is journaled when the slide is delivered; a replay after a kill finds the row."""
    with open(lab.ledger, "w", encoding="utf-8", newline="") as fh:
        fh.write(_rows(20_000))
    os.chmod(lab.ledger, 0o600)
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    assert lab.run() == 0
    assert len(lab.rows()) == 20_001 and lab.rows()[-1]["original"] == "x.svs"


def test_sha256_is_made_within_the_time_limit(lab, monkeypatch):
    """A slide whose hashing does not end (a 1 TiB sparse file) is stopped by the time limit
    like anything else in the bounded step, instead of holding the run after delivery."""
    from paw import slide
    lab.write_config(extra="ledger: {sha256: true}\nanonymize: {time_limit_seconds: 1}\n")
    real = slide.sha256

    def slow(*args, **kwargs):
        time.sleep(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(slide, "sha256", slow)
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    started = time.monotonic()
    assert lab.run() == 3
    assert time.monotonic() - started < 4
    [row] = lab.rows()
    assert "took longer than anonymize.time_limit_seconds" in row["error"]
    assert lab.outbox_files() == []


def _delivered_digest(paths):
    """The README's definition, computed on the delivered files."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += [os.path.join(root, n) for root, _, names in os.walk(path) for n in names]
        else:
            files.append(path)
    named = len(files) > 1 or files != list(paths)
    base = os.path.dirname(paths[0])
    digest = hashlib.sha256()
    for path in sorted(files):
        if named:
            digest.update(os.path.relpath(path, base).encode() + b"\0")
        with open(path, "rb") as fh:
            digest.update(fh.read())
    return digest.hexdigest()


def test_the_digest_made_before_delivery_is_the_delivered_slides(lab):
    from synth import dicom, mrxs
    lab.write_config(extra="ledger: {sha256: true}\n")
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    mrxs.write(os.path.join(lab.inbox, "m.mrxs"))
    dicom.write(os.path.join(lab.inbox, "d"))
    assert lab.run() == 0
    for row in lab.rows():
        output = os.path.join(lab.outbox, row["output"])
        paths = [output, output[:-len(".mrxs")]] if output.endswith(".mrxs") else [output]
        assert row["sha256"] == _delivered_digest(paths), row["original"]
