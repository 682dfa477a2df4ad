#!/usr/bin/env python3
"""paw benchmarks, run by hand (not in CI): `python3 bench/bench.py [--quick]`.

Prints medians of repeated measurements, each in a fresh `paw.py` process started the way cron
starts it, with wall time and peak RSS from wait4():
- one slide per run at 20 MB, 2 GB and 20 GB (sparse synthetic SVS: no disk cost), and the
  ratio largest/smallest;
- an idle tick with N not-yet-stable files in the inbox (10,000 and 100,000), the size of the
  stability record, and `paw.py --help` (start-up cost);
- what a 1,000,000-row CSV ledger adds per slide (a run of 20 slides against one with an empty
  ledger; and has_job alone);
- the optional O(size) steps alone: full-file verification scan and SHA-256, in MB/s, against
  `cat FILE > /dev/null` and `sha256sum` on the same (non-sparse) file;
- the tile walk (tileheaders.py) of one image of JPEG tiles, each read whole: the default
  sample at several sizes against every tile (`verify.full_scan`), for images of the 20 MB,
  2 GB and 20 GB slides.
- case pseudonyms and project folders: a batch with naming.case and the mirror layout against
  the same batch flat without a pattern, and a run against a ledger that already knows 100,000
  cases.
- by-hand copies (`anonymize --output`) of a dense 2 GB slide against `cp` + `sync`, and the
  reflink where the file system offers it (`--copy-dir` on a btrfs or XFS mount).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the synthetic slide generators

PAW = [sys.executable, os.path.join(ROOT, "paw.py")]


def timed(command, **kwargs):
    """Wall seconds and peak RSS (MB) of one child process.

    Measured by GNU time as the parent: on Linux a child's ru_maxrss starts at its parent's
    high-water mark, so wait4() from this (large) process would report our own size.
    """
    return timed_cpu(command, **kwargs)[:2]


def timed_cpu(command, **kwargs):
    """Wall seconds, peak RSS (MB) and CPU seconds (user + system) of one child process: on
    a busy machine CPU time says more about a small difference than wall time."""
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", *command], capture_output=True,
                            text=True, **kwargs)
    wall = time.perf_counter() - start
    if result.returncode not in (0, 3):
        raise SystemExit(f"{command} failed:\n{result.stderr}")
    rss, user, system = result.stderr.strip().splitlines()[-1].split()
    return wall, int(rss) / 1024, float(user) + float(system)


def make_lab(base, min_age=0, runs=1, extra=""):
    for name in ("inbox", "outbox", "quarantine"):
        os.makedirs(os.path.join(base, name), exist_ok=True)
    config = os.path.join(base, "paw.yaml")
    with open(config, "w") as fh:
        fh.write(f"stability: {{min_age_seconds: {min_age}, unchanged_runs: {runs}}}\n{extra}")
    return config


SIZES = {"20 MB": 2600, "2 GB": 26000, "20 GB": 82000}  # square RGB, uncompressed: 3 * side^2


def _synthetic(vendor, path, side):
    """A sparse synthetic slide of about 3 * side^2 bytes; returns the file name used."""
    from synth import aperio, leica, ndpi, philips, ventana
    big = 3 * side * side >= 4 << 30
    if vendor == "aperio":
        aperio.write(path, side, side, sparse=True, bigtiff=big)
    elif vendor == "ndpi":
        ndpi.write(path, hole=3 * side * side)
    elif vendor == "philips":
        philips.write(path, side, side, sparse=True)
    elif vendor == "ventana":
        ventana.write(path, side, side, sparse=True)
    elif vendor == "leica":
        leica.write(path, side, side, sparse=True)
    elif vendor == "czi":   # Gray8 subblocks of 1024x1024 (1 MiB each), pixel data as holes
        from synth import czi
        czi.write_sparse(path, max(1, 3 * side * side >> 20))
    elif vendor == "ome":   # bfconvert's layout: levels down to one tile in SubIFDs, label, macro
        from synth import ome
        ome.write(path, side, side, sparse=True, bigtiff=big, levels=max(1, (side // 256).bit_length() - 1))


EXTENSIONS = {"aperio": ".svs", "ndpi": ".ndpi", "philips": ".tiff", "ventana": ".bif", "leica": ".scn",
              "czi": ".czi", "ome": ".ome.tiff"}


def bench_sizes(repeat, sizes, vendors):
    from types import SimpleNamespace

    from paw.formats import prepare
    from paw.verify import verify

    options = SimpleNamespace(keep_macro=False, full_scan=False)
    print(f"\nOne slide (sparse synthetic), median of {repeat}: in-process = parse, plan, apply,")
    print("verify; run = a fresh `paw.py run` process with that slide in the inbox.")
    print(f"{'format':>8} {'slide':>6} {'bytes':>15} {'in-process ms':>14} {'run s':>7} {'run RSS MB':>11}")
    for vendor in vendors:
        results = {}
        for name in sizes:
            inproc, walls, rsss = [], [], []
            for _ in range(repeat):
                base = tempfile.mkdtemp(prefix="pawbench-")
                try:
                    path = os.path.join(base, "S26-047119 A1 HE" + EXTENSIONS[vendor])
                    _synthetic(vendor, path, SIZES[name])
                    size = os.path.getsize(path)
                    start = time.perf_counter()
                    module, plan, _ = prepare(path, options)
                    plan.apply(path)
                    verify(path, module, plan, options)
                    inproc.append((time.perf_counter() - start) * 1000)
                    config = make_lab(base)
                    os.rename(path, os.path.join(base, "inbox", os.path.basename(path)))
                    _synthetic(vendor, path, SIZES[name])  # anonymized in place above: a fresh one
                    os.rename(path, os.path.join(base, "inbox", os.path.basename(path)))
                    wall, rss = timed(PAW + ["--config", config, "-q"])
                    assert len(os.listdir(os.path.join(base, "outbox"))) == 1, "not anonymized"
                    walls.append(wall)
                    rsss.append(rss)
                finally:
                    shutil.rmtree(base)
            results[name] = statistics.median(inproc)
            print(f"{vendor:>8} {name:>6} {size:>15,} {statistics.median(inproc):>14.1f} "
                  f"{statistics.median(walls):>7.3f} {statistics.median(rsss):>11.1f}")
        first, last = list(results)[0], list(results)[-1]
        print(f"{vendor:>8} in-process ratio {last} / {first}: {results[last] / results[first]:.2f}")


def bench_idle(repeat, files):
    print(f"\nIdle tick with {files:,} not-yet-stable files, median of {repeat}:")
    base = tempfile.mkdtemp(prefix="pawbench-")
    try:
        config = make_lab(base, min_age=3600)
        for i in range(files):
            with open(os.path.join(base, "inbox", f"slide-{i:06}.svs"), "wb") as fh:
                fh.write(b"x")
        timed(PAW + ["--config", config, "-q"])  # the first run records fingerprints
        runs = [timed_cpu(PAW + ["--config", config, "-q"]) for _ in range(repeat)]
        helps = [timed(PAW + ["--help"]) for _ in range(repeat)]
        bare = [timed([sys.executable, "-c", "pass"]) for _ in range(repeat)]
        record = os.path.getsize(os.path.join(base, "state", "stability.json"))
        print(f"  run:    {statistics.median(r[0] for r in runs):.3f} s, "
              f"{statistics.median(r[1] for r in runs):.1f} MB peak RSS, "
              f"{statistics.median(r[2] for r in runs):.3f} s CPU; stability.json {record / 1e6:.1f} MB")
        # With the status page, written at every tick (as with a 5-minute timer: the page is
        # refreshed when older than a minute), interleaved with ticks without it.
        page = os.path.join(base, "status.html")
        plain, paged = [], []
        for _ in range(repeat):
            with open(config, "w") as fh:
                fh.write("stability: {min_age_seconds: 3600, unchanged_runs: 1}\n")
            plain.append(timed_cpu(PAW + ["--config", config, "-q"]))
            with open(config, "w") as fh:
                fh.write(f"stability: {{min_age_seconds: 3600, unchanged_runs: 1}}\nreport: {{html: '{page}'}}\n")
            if os.path.exists(os.path.join(base, "state", "report.json")):
                os.remove(os.path.join(base, "state", "report.json"))  # due: the page is written
            paged.append(timed_cpu(PAW + ["--config", config, "-q"]))
        print(f"  run writing the status page: {statistics.median(r[0] for r in paged):.3f} s, "
              f"{statistics.median(r[2] for r in paged):.3f} s CPU (without, interleaved: "
              f"{statistics.median(r[0] for r in plain):.3f} s, {statistics.median(r[2] for r in plain):.3f} s CPU); "
              f"page {os.path.getsize(page) / 1e3:.0f} kB")
        print(f"  --help: {statistics.median(h[0] for h in helps):.3f} s, "
              f"{statistics.median(h[1] for h in helps):.1f} MB peak RSS")
        print(f"  (bare `python -c pass`: {statistics.median(b[0] for b in bare):.3f} s, "
              f"{statistics.median(b[1] for b in bare):.1f} MB)")
    finally:
        shutil.rmtree(base)


def bench_ledger(repeat, rows, slides=20):
    """What a long CSV ledger adds per slide: has_job reads from the journaled mark only."""
    from paw.ledger import COLUMNS
    from paw.ledger.csvfile import CsvLedger
    from synth import aperio

    print(f"\nCSV ledger of {rows:,} rows, {slides} slides per run, median of {repeat}:")
    base = tempfile.mkdtemp(prefix="pawbench-")
    try:
        big = os.path.join(base, "big.csv")
        row = ("2026-01-01T00:00:00+00:00,{:016x},anonymized,S26-{} A1 HE.svs,PAW-0000000000.svs,"
               "aperio,,label image destroyed; macro image destroyed,123456789,0.100,,\r\n")
        with open(big, "w", encoding="utf-8", newline="") as fh:
            fh.write("\ufeff" + ",".join(COLUMNS) + "\r\n")
            for start in range(0, rows, 100_000):
                fh.write("".join(row.format(i, i) for i in range(start, min(rows, start + 100_000))))
        print(f"  ledger: {os.path.getsize(big) / 1e6:.0f} MB")
        ledger = CsvLedger(big)
        mark = ledger.mark()
        ledger.append({"job": "benchjob", "status": "anonymized"})
        times = []
        for _ in range(repeat * 20):
            start = time.perf_counter()
            ledger.has_job("benchjob", since=mark)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        ledger.has_job("benchjob")  # what every slide paid before the mark: the whole file
        whole = time.perf_counter() - start
        print(f"  has_job from the mark: {statistics.median(times) * 1000:.3f} ms "
              f"(reading the whole ledger, as before: {whole * 1000:.0f} ms)")
        template = os.path.join(base, "template.svs")
        aperio.write(template, 512, 512)
        per_run = {}
        for label, ledger_rows in (("empty ledger", None), (f"{rows:,}-row ledger", big)):
            cpus = []
            for n in range(repeat):
                lab = os.path.join(base, f"lab-{n}-{ledger_rows is None}")
                config = make_lab(lab)
                for i in range(slides):
                    shutil.copyfile(template, os.path.join(lab, "inbox", f"S26-{i:04} A1 HE.svs"))
                if ledger_rows:
                    shutil.copyfile(big, os.path.join(lab, "ledger.csv"))
                subprocess.run(["sync"], check=True)
                cpus.append(timed_cpu(PAW + ["--config", config, "-q"])[2])
                shutil.rmtree(lab)
            per_run[label] = statistics.median(cpus)
            print(f"  run of {slides} slides, {label}: {per_run[label]:.3f} s CPU")
        added = (per_run[f"{rows:,}-row ledger"] - per_run["empty ledger"]) / slides
        print(f"  added per slide: {added * 1000:.1f} ms CPU")
    finally:
        shutil.rmtree(base)


def _random_file(path, megabytes):
    with open(path, "wb") as fh:
        block = os.urandom(1 << 20)
        for _ in range(megabytes):
            fh.write(block)


def bench_batch(slides):
    """A 1,000-slide inbox in one run, against one process per slide (a shell wrapper's way)."""
    print(f"\nBatch of {slides:,} small synthetic SVS:")
    base = tempfile.mkdtemp(prefix="pawbench-")
    try:
        from synth import aperio
        config = make_lab(base)
        template = os.path.join(base, "template.svs")
        aperio.write(template, 512, 512)
        for i in range(slides):
            shutil.copyfile(template, os.path.join(base, "inbox", f"S26-{i:06} A1 HE.svs"))
        wall, rss = timed(PAW + ["--config", config, "-q"])
        done = len(os.listdir(os.path.join(base, "outbox")))
        assert done == slides, f"{done} of {slides} anonymized"
        print(f"  one run:             {slides / wall:7.1f} slides/s ({wall:.1f} s, {rss:.1f} MB peak RSS)")
        manual = os.path.join(base, "manual")
        os.makedirs(manual)
        count = min(slides, 200)
        start = time.perf_counter()
        for i in range(count):
            subprocess.run(PAW + ["--config", config, "-q", "anonymize", template, "--output", manual],
                           check=True, capture_output=True)
        per_process = count / (time.perf_counter() - start)
        print(f"  process per slide:   {per_process:7.1f} slides/s (first {count}; "
              f"ratio {slides / wall / per_process:.1f}x)")
    finally:
        shutil.rmtree(base)


def bench_cross_device(megabytes):
    """The EXDEV path (copy, fsync, rename, remove) against cp of the same file."""
    from paw import fsops
    print(f"\nCross-file-system move of a {megabytes} MB file (forced copy path), page cache warm:")
    base = tempfile.mkdtemp(prefix="pawbench-")
    try:
        source = os.path.join(base, "a.bin")
        _random_file(source, megabytes)
        start = time.perf_counter()
        subprocess.run(["cp", source, os.path.join(base, "b.bin")], check=True)
        subprocess.run(["sync", "-f", base], check=True)
        cp = megabytes / (time.perf_counter() - start)
        target = os.path.join(base, "c.bin")
        start = time.perf_counter()
        fsops._copy_then_remove(source, target, target + ".partial", None)  # what move() does on EXDEV
        paw = megabytes / (time.perf_counter() - start)
        print(f"  cp + sync:  {cp:7.0f} MB/s\n  paw:        {paw:7.0f} MB/s ({paw / cp:.0%} of cp)")
    finally:
        shutil.rmtree(base)


def fill_holes(path, block=8 << 20):
    """Write pseudo-random bytes into every hole of a sparse file (the uncompressed tiles of a
    synthetic slide): a dense file whose structure is unchanged."""
    pattern = os.urandom(block)
    fd = os.open(path, os.O_RDWR)
    try:
        size, position = os.fstat(fd).st_size, 0
        while position < size:
            try:
                hole = os.lseek(fd, position, os.SEEK_HOLE)
            except OSError:
                break
            if hole >= size:
                break
            try:
                data = os.lseek(fd, hole, os.SEEK_DATA)
            except OSError:  # ENXIO: a hole up to the end
                data = size
            while hole < data:
                done = os.pwrite(fd, pattern[:min(block, data - hole)], hole)
                hole += done
            position = data
        os.fsync(fd)
    finally:
        os.close(fd)


def bench_copies(repeat, megabytes, folder=None):
    """By-hand copies (`paw.py anonymize --output`) against `cp` + `sync` of the same dense
    slide, in `folder` (default: a temporary folder; give a btrfs or XFS mount to see the
    reflink): the file copy alone (fsops.copy_file, fsynced), `cp --reflink=always` where the
    file system can, and the whole command (copy, plan, apply, verify, rename)."""
    from paw import fsops
    from synth import aperio
    side = int((megabytes * 1_000_000 / 3) ** 0.5)
    base = tempfile.mkdtemp(prefix="pawbench-", dir=folder)
    print(f"\nBy-hand copies of a dense {megabytes:,} MB Aperio slide in {base} (median of {repeat}):")
    try:
        config = make_lab(base)
        source = os.path.join(base, "S26-1 A1 HE.svs")
        aperio.write(source, side, side, sparse=True, bigtiff=3 * side * side >= 4 << 30)
        fill_holes(source)  # uncompressed tiles, now real bytes: a dense file of that size
        subprocess.run(["sync"], check=True)
        print(f"  (the slide: {os.path.getsize(source) / 1e6:,.0f} MB, "
              f"{os.stat(source).st_blocks * 512 / 1e6:,.0f} MB on disk)")
        out = os.path.join(base, "out")

        def fresh():
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            subprocess.run(["sync"], check=True)

        def measure(step):
            times = []
            for _ in range(repeat):
                fresh()
                start = time.perf_counter()
                step()
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        cp = measure(lambda: (subprocess.run(["cp", source, out], check=True),
                              subprocess.run(["sync", "-f", out], check=True)))
        print(f"  cp + sync:                  {cp:6.2f} s")
        reflink = subprocess.run(["cp", "--reflink=always", source, os.path.join(base, "probe")],
                                 capture_output=True).returncode == 0
        if reflink:
            os.remove(os.path.join(base, "probe"))
            clone = measure(lambda: (subprocess.run(["cp", "--reflink=always", source, out], check=True),
                                     subprocess.run(["sync", "-f", out], check=True)))
            print(f"  cp --reflink=always + sync: {clone:6.2f} s")
        copy = measure(lambda: fsops.copy_file(source, os.path.join(out, "copy.svs")))
        print(f"  paw's copy (fsynced):       {copy:6.2f} s ({copy / cp:.0%} of cp + sync)")
        whole = measure(lambda: subprocess.run(PAW + ["--config", config, "-q", "anonymize", source,
                                                      "--output", out], check=True, capture_output=True))
        print(f"  paw.py anonymize --output:  {whole:6.2f} s ({whole / cp:.0%} of cp + sync)")
    finally:
        shutil.rmtree(base)


def bench_full_scan(repeat, megabytes):
    from paw.verify import find_any
    print(f"\nO(size) steps on a {megabytes} MB file (page cache warm), median of {repeat}:")
    base = tempfile.mkdtemp(prefix="pawbench-")
    try:
        path = os.path.join(base, "big.bin")
        _random_file(path, megabytes)
        values = ["DOE^JANE-PAWTEST", "S26-047119", "jsmith-paw-operator", "SN-PAW-99812",
                  "11/20/26", "14:32:07", "BC-S26-047119-A1"]

        def rate(fn):
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return megabytes / statistics.median(times)

        from paw.slide import sha256
        cat = rate(lambda: subprocess.run(f"cat '{path}' > /dev/null", shell=True, check=True))
        sha = rate(lambda: subprocess.run(["sha256sum", path], capture_output=True, check=True))
        print(f"  cat > /dev/null:        {cat:8.0f} MB/s")
        print(f"  paw full-scan search:   {rate(lambda: find_any(path, values)):8.0f} MB/s")
        print(f"  sha256sum:              {sha:8.0f} MB/s")
        print(f"  paw ledger SHA-256:     {rate(lambda: sha256([path])):8.0f} MB/s")
    finally:
        shutil.rmtree(base)


def bench_tile_headers(repeat, sizes, drawn=(8, 32, 64, 128)):
    """The walk of one JPEG-tiled image, each tile read whole: the default sample (the first,
    the last and DRAWN random tiles) at several DRAWN, against every tile (full scan), for an
    image the size of the 20 MB / 2 GB / 20 GB slides (256x256 tiles of ~5 KB: real tiles are
    larger, so read time per tile is larger too; the number of reads is what the sample fixes)."""
    import io

    import numpy as np
    from PIL import Image

    from paw.formats import tileheaders
    from synth.tiffwriter import Image as Directory, write_tiff
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (10, 20, 30)).save(out, "JPEG", quality=80)
    tile = out.getvalue()
    print(f"\nTile walk of one image of identical 256x256 JPEG tiles, median of {repeat} (ms):")
    print(f"{'slide':>6} {'tiles':>8} {'MB':>6} " + " ".join(f"{'DRAWN ' + str(d):>10}" for d in drawn)
          + f" {'every tile':>11}")
    base = tempfile.mkdtemp(prefix="pawbench-")
    try:
        for name in sizes:
            side = -(-SIZES[name] // 256)
            path = os.path.join(base, f"tiles-{name}.tif")
            tags = {256: (4, side * 256), 257: (4, side * 256), 258: (3, [8, 8, 8]), 259: (3, 7),
                    262: (3, 6), 277: (3, 3), 322: (3, 256), 323: (3, 256)}
            write_tiff(path, [Directory(tags, [tile] * (side * side), tiled=True)], bigtiff=True)
            subprocess.run(["sync"], check=True)
            import tifffile
            with tifffile.TiffFile(path) as tf:
                page = tf.pages[0]
                spans = np.column_stack((page.dataoffsets, page.databytecounts))
                image = tileheaders.Image("directory 0", 7, spans)
            fd = os.open(path, os.O_RDONLY)
            timings = []
            try:
                for n, full in [(d, False) for d in drawn] + [(0, True)]:
                    runs = []
                    for _ in range(repeat):
                        saved, tileheaders.DRAWN = tileheaders.DRAWN, n
                        try:
                            start = time.perf_counter()
                            assert tileheaders.problems(fd, [image], full) == []
                            runs.append((time.perf_counter() - start) * 1000)
                        finally:
                            tileheaders.DRAWN = saved
                    timings.append(statistics.median(runs))
            finally:
                os.close(fd)
            print(f"{name:>6} {side * side:>8,} {os.path.getsize(path) / 1e6:6.0f} "
                  + " ".join(f"{t:>10.1f}" for t in timings[:-1]) + f" {timings[-1]:>11.0f}")
    finally:
        shutil.rmtree(base)


def bench_label(repeat, sizes, vendors):
    """What `anonymize.label: replace` adds per slide: drawing (Pillow, segno) and writing it."""
    from types import SimpleNamespace

    from paw import label
    from paw.formats import prepare
    from paw.verify import verify

    options = SimpleNamespace(keep_macro=False, full_scan=False)
    print(f"\nanonymize.label: replace, in-process ms per slide (draw + parse, plan, apply, verify), "
          f"median of {repeat}:")
    print(f"{'format':>8} {'slide':>6} {'destroy':>8} {'replace':>8} {'draw only':>10}")
    label.render("PAW-0000000000", ["PAW-0000000000"])  # the first call loads the font
    for vendor in vendors:
        for name in sizes:
            times = {"destroy": [], "replace": [], "draw": []}
            for _ in range(repeat):
                for mode in ("destroy", "replace"):
                    base = tempfile.mkdtemp(prefix="pawbench-")
                    try:
                        path = os.path.join(base, "slide" + EXTENSIONS[vendor])
                        _synthetic(vendor, path, SIZES[name])
                        start = time.perf_counter()
                        drawn = None
                        if mode == "replace":
                            drawn = label.render("PAW-7K2M9QX4TD", ["PAW-7K2M9QX4TD", "block: A1", "stain: HE"])
                            times["draw"].append((time.perf_counter() - start) * 1000)
                        module, plan, _ = prepare(path, options, "PAW-7K2M9QX4TD", drawn)
                        plan.apply(path)
                        verify(path, module, plan, options)
                        times[mode].append((time.perf_counter() - start) * 1000)
                    finally:
                        shutil.rmtree(base)
            m = {k: statistics.median(v) for k, v in times.items()}
            print(f"{vendor:>8} {name:>6} {m['destroy']:>8.1f} {m['replace']:>8.1f} {m['draw']:>10.1f}")


def bench_dicom(repeat, cases):
    """DICOM instances are rebuilt: the header from the allow-list, the pixel data copied. Cost
    grows with the pixel bytes (one copy) and with the header (per-frame items); memory must not."""
    from synth import dicom
    print(f"\nDICOM, one VOLUME instance through a `paw.py run`, median of {repeat}:")
    print(f"{'frames':>8} {'tile':>5} {'per-frame':>9} {'bytes':>15} {'run s':>7} {'run RSS MB':>11}")
    for frames, tile, per_frame in cases:
        walls, rsss = [], []
        for _ in range(repeat):
            base = tempfile.mkdtemp(prefix="pawbench-")
            try:
                config = make_lab(base)
                path = dicom.write_large(os.path.join(base, "inbox", "S26-047119 A1 HE"), frames, tile, per_frame)
                size = os.path.getsize(path)
                subprocess.run(["sync"], check=True)
                wall, rss = timed(PAW + ["--config", config, "-q"])
                assert len(os.listdir(os.path.join(base, "outbox"))) == 1, "not anonymized"
                walls.append(wall)
                rsss.append(rss)
            finally:
                shutil.rmtree(base)
        print(f"{frames:>8,} {tile:>5} {str(per_frame):>9} {size:>15,} {statistics.median(walls):>7.2f} "
              f"{statistics.median(rsss):>11.1f}")
CASES = ("naming:\n  pattern: '(?P<specimen>S\\d\\d-\\d+) (?P<block>[A-Z]\\d*) (?P<stain>\\w+)'\n"
         "  case: specimen\n  template: '{case}_{block}_{stain}'\n")


def bench_cases(repeat, slides, known=100_000):
    """One run over `slides` slides of slides/4 cases in 10 project folders, with case pseudonyms
    and the mirror layout, against the same slides flat without a pattern; then the same batch
    against a cases file that already holds `known` cases (read once per run)."""
    print(f"\nCase pseudonyms and project folders, {slides:,} small synthetic SVS in one run:")
    from synth import aperio
    template_dir = tempfile.mkdtemp(prefix="pawbench-")
    template = os.path.join(template_dir, "template.svs")
    aperio.write(template, 512, 512)

    def batch(extra, folders, seed=0):
        base = tempfile.mkdtemp(prefix="pawbench-")
        try:
            config = make_lab(base, extra=extra)
            if seed:
                with open(os.path.join(base, "ledger.cases.csv"), "w", encoding="utf-8") as fh:
                    fh.write("case_key,case,time_utc\n")
                    for i in range(seed):
                        fh.write(f"x{i:07},PAW-{i:010},2026-01-01T00:00:00+00:00\n")
            for i in range(slides):
                folder = os.path.join(base, "inbox", f"Project{i % 10}" if folders else "")
                os.makedirs(folder, exist_ok=True)
                shutil.copyfile(template, os.path.join(folder, f"S26-{i // 4:06} {'ABCD'[i % 4]}1 HE.svs"))
            subprocess.run(["sync"], check=True)
            return timed(PAW + ["--config", config, "-q"])
        finally:
            shutil.rmtree(base)

    try:
        results = {"flat": [], "cases": [], "known": []}
        for _ in range(repeat):  # interleaved: the disk's fsync time drifts
            results["flat"].append(batch("outbox_layout: flat\n", False))
            results["cases"].append(batch(CASES, True))
            results["known"].append(batch(CASES, True, seed=known))
    finally:
        shutil.rmtree(template_dir)
    (flat, flat_rss), (cases, cases_rss), (known_wall, known_rss) = (
        (statistics.median(w for w, _ in results[k]), statistics.median(r for _, r in results[k]))
        for k in ("flat", "cases", "known"))
    print(f"  (median of {repeat})")
    print(f"  flat, no pattern:            {slides / flat:7.1f} slides/s ({flat:.1f} s, {flat_rss:.1f} MB)")
    print(f"  naming.case, mirror:         {slides / cases:7.1f} slides/s ({cases:.1f} s, {cases_rss:.1f} MB; "
          f"time ratio {cases / flat:.2f})")
    print(f"  the same, {known:,} known cases: {slides / known_wall:7.1f} slides/s ({known_wall:.1f} s, "
          f"{known_rss:.1f} MB)")


def bench_dicom_frames(repeat, counts):
    """The proof of an encapsulated layout (encapsulated.py: offset table, one fragment per frame,
    start and end markers of every frame) walks the item headers: it grows with the frame
    count, in the plan and again in the audit. In-process, prepare + apply + verify."""
    from types import SimpleNamespace

    from synth import dicom
    from paw.formats import prepare
    from paw.verify import verify
    options = SimpleNamespace(keep_macro=False, full_scan=False, replace_label=False, ledger_sha256=False)
    print(f"\nDICOM JPEG frames (16 x 16 tiles), prepare + apply + verify in-process, median of {repeat}:")
    print(f"{'frames':>8} {'bytes':>13} {'seconds':>8}")
    for frames in counts:
        times = []
        for _ in range(repeat):
            base = tempfile.mkdtemp(prefix="pawbench-")
            try:
                folder = os.path.join(base, "slide")
                path = dicom.write_large_jpeg(folder, frames)
                size = os.path.getsize(path)
                began = time.perf_counter()
                handler, plan, _ = prepare(folder, options)
                plan.apply(folder)
                verify(folder, handler, plan, options)
                times.append(time.perf_counter() - began)
            finally:
                shutil.rmtree(base)
        print(f"{frames:>8,} {size:>13,} {statistics.median(times):>8.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, no 20 GB slide")
    p.add_argument("--idle-files", default="10000,100000", help="comma-separated counts")
    p.add_argument("--ledger-rows", type=int, default=1_000_000)
    p.add_argument("--only", help="run only these parts (comma-separated: sizes, label, idle, "
                                  "ledger, batch, cross-device, full-scan, dicom, dicom-frames, tile-headers, "
                                  "cases, copies)")
    p.add_argument("--formats", default=",".join(EXTENSIONS), help="comma-separated vendors")
    p.add_argument("--copy-dir", help="where `copies` works (e.g. a btrfs mount; default: a temporary folder)")
    args = p.parse_args()
    repeat = 3 if args.quick else 5
    sizes = ["20 MB", "2 GB"] if args.quick else list(SIZES)
    parts = {
        "sizes": lambda: bench_sizes(repeat, sizes, args.formats.split(",")),
        "label": lambda: bench_label(repeat, [sizes[0], sizes[-1]], [
            v for v in ("aperio", "philips", "ventana") if v in args.formats.split(",")]),
        "idle": lambda: [bench_idle(repeat, int(n)) for n in args.idle_files.split(",")],
        "ledger": lambda: bench_ledger(repeat, args.ledger_rows),
        "batch": lambda: bench_batch(100 if args.quick else 1000),
        "cross-device": lambda: bench_cross_device(256 if args.quick else 1024),
        "full-scan": lambda: bench_full_scan(repeat, 256 if args.quick else 1024),
        "dicom-frames": lambda: bench_dicom_frames(3, [1024, 10240, 102400]),
        "dicom": lambda: bench_dicom(3 if args.quick else 5, [
            (100, 256, False), (1000, 256, False), (10000, 256, False)] +
            [(n, 16, True) for n in ((1000, 10000) if args.quick else (1000, 10000, 100000))]),
        "tile-headers": lambda: bench_tile_headers(repeat, sizes),
        "cases": lambda: bench_cases(repeat, 100 if args.quick else 1000),
        "copies": lambda: bench_copies(3 if args.quick else 5, 200 if args.quick else 2000, args.copy_dir),
    }
    for name, part in parts.items():
        if not args.only or name in args.only.split(","):
            part()


if __name__ == "__main__":
    main()
