"""Faults and hostile input, at random: SIGKILL at random moments, and mutated slides of every
vendor. CI runs a slice; `PAW_SUITE=full` runs the full sizes (200 kills, 10,000 mutations) and
prints the figures.
"""

import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checks import leaked, leaked_outside_payload
from conftest import ROOT, Lab
from paw.errors import Unsupported, VerificationFailed
from paw.formats import prepare
from paw.slide import time_limit
from synth import aperio, dicom, generic, isyntax, leica, mrxs, ndpi, philips, ventana
from paw.verify import verify

FULL = os.environ.get("PAW_SUITE") == "full"
KILL_TRIALS = 200 if FULL else 6
FUZZ_CASES = 10_000 if FULL else 300
GENERATORS = {"aperio": (aperio, ".svs"), "ndpi": (ndpi, ".ndpi"), "philips": (philips, ".tiff"),
              "ventana": (ventana, ".bif"), "leica": (leica, ".scn"), "generic": (generic, ".tif"),
              "isyntax": (isyntax, ".isyntax"),
              "dicom": (SimpleNamespace(write=dicom.write_single), ".dcm")}  # one VOLUME instance


def _report(name, figures):
    if FULL:
        print(f"\n{name}: " + json.dumps(figures))


def mixed_inbox(lab):
    """One slide of every format (MRXS and DICOM as folders), a broken file and a broken MRXS
    bundle; returns all planted values."""
    planted = set()
    for vendor, (generator, extension) in GENERATORS.items():
        planted.update(generator.write(os.path.join(lab.inbox, f"S26-{vendor} A1 HE{extension}")))
    planted.update(mrxs.write(os.path.join(lab.inbox, "S26-mrxs A1 HE.mrxs")))
    planted.update(dicom.write(os.path.join(lab.inbox, "S26-dicom A1 HE")))
    with open(os.path.join(lab.inbox, "S26-broken.svs"), "wb") as fh:
        fh.write(b"II*\0" + os.urandom(3000))
    os.makedirs(os.path.join(lab.inbox, "S26-mirax"))
    with open(os.path.join(lab.inbox, "S26-mirax.mrxs"), "w") as fh:
        fh.write("[GENERAL]\n")
    return sorted(planted - {"20261120"})  # the DICOM study date also occurs in other formats' dates


def slide_units(inbox):
    """The names of the slides in the inbox: an MRXS folder belongs to its .mrxs file."""
    names = os.listdir(inbox)
    return sorted(n for n in names if not (os.path.isdir(os.path.join(inbox, n)) and n + ".mrxs" in names))


def check_invariants(lab, planted, originals):
    rows = lab.rows()
    by_original = {}
    for row in rows:
        by_original.setdefault(row["original"], []).append(row["status"])
    lost = [o for o in originals if o not in by_original]
    duplicated = [o for o, statuses in by_original.items() if len(statuses) > 1]
    outbox = slide_units(lab.outbox)
    leaks = [(os.path.relpath(os.path.join(root, f), lab.outbox), leaked(os.path.join(root, f), planted))
             for root, _, files in os.walk(lab.outbox) for f in files]
    leaks = [f"{name}: {values}" for name, values in leaks if values]  # which values: a chance
    # match of a planted number inside a fresh random UID must be told from a real leak
    anonymized = sum(s == ["anonymized"] for s in by_original.values())
    return {"lost": lost, "duplicated": duplicated, "leaked": leaks,
            "outbox_matches_ledger": len(outbox) == anonymized,
            "staging_empty": lab.staging() == [], "inbox_empty": os.listdir(lab.inbox) == []}


def test_sigkill_at_random_moments(tmp_path):
    rng = random.Random(int(os.environ.get("PAW_SEED", "20261124")))
    totals = {"trials": 0, "slides": 0, "lost": 0, "duplicated": 0, "leaked": 0, "killed": 0}
    calibration = Lab(tmp_path / "calibration")  # how long an uninterrupted run takes here
    mixed_inbox(calibration)
    started = time.monotonic()
    calibration.run_subprocess("-q")
    duration = time.monotonic() - started
    for trial in range(KILL_TRIALS):  # every other trial also draws labels (appends to files)
        lab = Lab(tmp_path / f"t{trial}", extra="anonymize: {label: replace}\n" if trial % 2 else "")
        planted = mixed_inbox(lab)
        originals = slide_units(lab.inbox)
        command = [sys.executable, os.path.join(ROOT, "paw.py"), "--config", lab.config, "-q"]
        if rng.random() < 0.3:  # a third of the trials take the cross-file-system path
            command = [sys.executable, os.path.join(ROOT, "tests", "crashrun.py"), "--config",
                       lab.config, "-q"]
        env = dict(os.environ, PAW_CRASH_POINT="never", PAW_FAKE_EXDEV="1")
        process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        try:  # a run that ends before its kill shows the machine is quicker than calibrated
            process.wait(timeout=rng.uniform(0.05, 0.95) * duration)
            duration = time.monotonic() - started
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        totals["killed"] += process.wait() == -signal.SIGKILL
        recovered = lab.run_subprocess("-q")
        assert recovered.returncode in (0, 3), recovered.stderr
        result = check_invariants(lab, planted, originals)
        totals["trials"] += 1
        totals["slides"] += len(originals)
        for key in ("lost", "duplicated", "leaked"):
            totals[key] += len(result[key])
        assert result == {"lost": [], "duplicated": [], "leaked": [], "outbox_matches_ledger": True,
                          "staging_empty": True, "inbox_empty": True}, (trial, result)
        shutil.rmtree(lab.base)
    _report("sigkill", dict(totals, run_seconds=round(duration, 2)))
    assert totals["killed"] > KILL_TRIALS // 2


# --- hostile input ------------------------------------------------------------------------------

_TEMPLATES = {}


def template(vendor, tmp_dir):
    if vendor not in _TEMPLATES:
        generator, extension = GENERATORS[vendor]
        path = os.path.join(tmp_dir, f"template-{vendor}{extension}")
        planted = generator.write(path)
        with open(path, "rb") as fh:
            _TEMPLATES[vendor] = (fh.read(), planted, extension)
    return _TEMPLATES[vendor]


def mutate(data, kind, rng):
    data = bytearray(data)
    n = len(data)
    if kind == "bitflip":
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(n):]
    elif kind == "overwrite":
        start = rng.randrange(n)
        data[start:start + rng.randint(1, 64)] = bytes([rng.choice((0, 0xFF, 0x41))]) * rng.randint(1, 64)
    elif kind == "offset-past-eof":  # a 4- or 8-byte word somewhere in the header area
        at = rng.randrange(0, min(n - 8, 4096))
        data[at:at + 8] = struct.pack("<Q", n + rng.randint(1, 1 << 40))
    elif kind == "loop":  # the first directory's next pointer back to itself
        bigtiff = data[2:4] == b"+\0"
        first = struct.unpack("<Q" if bigtiff else "<I", data[8:16] if bigtiff else data[4:8])[0]
        if first < n - 8:
            count = struct.unpack("<Q" if bigtiff else "<H", data[first:first + (8 if bigtiff else 2)])[0]
            at = first + (8 + 20 * count if bigtiff else 2 + 12 * count)
            if at + 8 <= n:
                data[at:at + (8 if bigtiff else 4)] = struct.pack("<Q" if bigtiff else "<I", first)
    elif kind == "huge-count":  # an entry count or a tag count set absurdly high
        at = rng.randrange(8, min(n - 4, 8192))
        data[at:at + 4] = struct.pack("<I", rng.choice((0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)))
    elif kind == "xml-garbage":  # invalid UTF-8 / broken markup where text lives
        text_at = [i for i in (data.find(b"<?xml"), data.find(b"<Data"), data.find(b"Aperio"),
                               data.find(b"Created=")) if i >= 0]
        if text_at:
            at = rng.choice(text_at) + rng.randint(0, 200)
            data[at:at + 4] = rng.choice((b"\xff\xfe<<", b"&#0;", b"]]>>", b"\x00\x00\x00\x00"))
    return bytes(data)


DRAWN = []  # one drawn label, made on first use


def drawn_label():
    if not DRAWN:
        from paw import label
        DRAWN.append(label.render("PAW-FUZZ000000", ["PAW-FUZZ000000"]))
    return DRAWN[0]


def process(path, full_scan=False, draw=False):
    """What the job does with one file: plan, apply, verify (the ledger and moves aside)."""
    options = SimpleNamespace(keep_macro=False, full_scan=full_scan)
    module, plan, _ = prepare(path, options, "PAW-FUZZ000000", drawn_label() if draw else None)
    plan.apply(path)
    verify(path, module, plan, options)


FUZZ_STATS = {"cases": 0, "verified": 0, "refused": 0}


@settings(max_examples=FUZZ_CASES, deadline=None, derandomize=not FULL,
          suppress_health_check=list(HealthCheck))
@given(vendor=st.sampled_from(sorted(GENERATORS)),
       kind=st.sampled_from(["bitflip", "truncate", "overwrite", "offset-past-eof", "loop",
                             "huge-count", "xml-garbage"]),
       seed=st.integers(0, 2 ** 32 - 1), draw=st.booleans())
def test_mutated_slides_end_refused_or_verified(tmp_path_factory, vendor, kind, seed, draw):
    folder = tmp_path_factory.getbasetemp()
    data, planted, extension = template(vendor, folder)
    path = os.path.join(folder, f"case{extension}")
    with open(path, "wb") as fh:
        fh.write(mutate(data, kind, random.Random(seed)))
    FUZZ_STATS["cases"] += 1
    try:
        with time_limit(20):
            process(path, draw=draw)
    except (Unsupported, VerificationFailed) as exc:
        FUZZ_STATS["refused"] += 1
        assert "\n" not in str(exc) and str(exc)
        return
    FUZZ_STATS["verified"] += 1
    # A mutation can damage a planted value beyond recognition, but never leave one intact
    # outside the image payload (which paw never inspects unless asked to: see below).
    assert leaked_outside_payload(path, planted) == [], (vendor, kind, seed)


def mutated_case(tmp_path, vendor, kind, seed):
    """Rebuild one fuzzer case as a file (for the regression tests of what the fuzzer found)."""
    data, planted, extension = template(vendor, tmp_path)
    path = str(tmp_path / f"case{extension}")
    with open(path, "wb") as fh:
        fh.write(mutate(data, kind, random.Random(seed)))
    return path


MRXS_MEMBERS = ("Slidedat.ini", "Index.dat", "Data0000.dat")


@settings(max_examples=FUZZ_CASES // 3, deadline=None, derandomize=not FULL,
          suppress_health_check=list(HealthCheck))
@given(member=st.sampled_from(MRXS_MEMBERS),
       kind=st.sampled_from(["bitflip", "truncate", "overwrite", "offset-past-eof", "huge-count"]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_mutated_mrxs_members_end_refused_or_verified(tmp_path_factory, member, kind, seed):
    """One member of an MRXS slide mutated: refused with a one-line reason, or verified with no
    planted value in Slidedat.ini, Index.dat or the .mrxs (the data files' tiles are payload)."""
    base = str(tmp_path_factory.mktemp("mrxs"))
    path = os.path.join(base, "case.mrxs")
    planted = mrxs.write(path)
    target = os.path.join(path[:-5], member)
    with open(target, "rb") as fh:
        data = fh.read()
    with open(target, "wb") as fh:
        fh.write(mutate(data, kind, random.Random(seed)))
    try:
        with time_limit(20):
            process(path)
    except (Unsupported, VerificationFailed) as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    for name in ("Slidedat.ini", "Index.dat"):
        assert leaked(os.path.join(path[:-5], name), planted) == [], (member, kind, seed)
    assert leaked(path, planted) == []


@pytest.mark.parametrize("full_scan", [False, True])
def test_label_bytes_declared_as_a_tile_are_refused(tmp_path, full_scan):
    """Found by the fuzzer: a length-changing overwrite shifted a Ventana label's pixels into
    the byte range the file declares as a kept tile. That tile is no longer a deflate stream
    ending at its byte count: the tile walk (first, last and a random sample; all with
    verify.full_scan) refuses it before anything is written."""
    from paw.errors import Unsupported
    path = mutated_case(tmp_path, "ventana", "overwrite", 111)
    with pytest.raises(Unsupported, match="directory 2 tile 0: deflate data does not parse"):
        process(path, full_scan=full_scan)


def test_fuzz_figures():
    """Runs after the fuzzer (file order): memory stayed bounded; prints the full-suite figures."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _report("fuzz", dict(FUZZ_STATS, peak_rss_mb=round(peak_mb)))
    assert peak_mb < 1024


def test_a_file_the_independent_reader_cannot_read_is_refused(tmp_path):
    """Found by the fuzzer: a huge count paw's parser accepts but tifffile drops the tag for."""
    path = mutated_case(tmp_path, "leica", "huge-count", 68384)
    with pytest.raises(VerificationFailed, match="tifffile sees"):
        process(path)


def test_a_tag_whose_type_was_changed_is_refused(tmp_path):
    """Found by the fuzzer: a bit flip made Software a number; detection expected text."""
    path = mutated_case(tmp_path, "generic", "bitflip", 1209404)
    with pytest.raises(Unsupported, match="is not text|is not a single number"):
        process(path)


def test_a_tile_offset_no_file_can_have_is_refused_with_one_line(tmp_path):
    """Found by the fuzzer: a huge count made a Philips tile offset one os.pread refuses (EINVAL);
    the tile walk crashed instead of refusing the slide."""
    path = mutated_case(tmp_path, "philips", "huge-count", 4_294_967_295)
    with pytest.raises((Unsupported, VerificationFailed)) as refused:
        process(path)
    assert "\n" not in str(refused.value)
