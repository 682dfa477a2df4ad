"""The command line as an admin meets it: options after the command, library warnings kept out of
cron's mail, a closed pipe, a missing package, the ledger found and exported for a spreadsheet."""

import csv
import io
import logging
import os
import subprocess
import sys

from conftest import ROOT
from synth import aperio

CASES = ("naming: {pattern: '(?P<specimen>S\\d\\d-\\d+) (?P<block>[A-Z]\\d*) (?P<stain>\\w+)', "
         "case: specimen, template: '{case}_{block}_{stain}'}\n")


def test_global_options_after_the_command(lab, capsys):
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    assert lab.run("run", "-q") == 0
    assert capsys.readouterr().err == ""            # -q after `run` is -q
    assert lab.run("status", "--json", "-q") == 0
    assert main_config_after_command(lab) == 0


def main_config_after_command(lab):
    from paw.cli import main
    return main(["status", "--config", lab.config])


def test_library_warnings_never_reach_stderr_but_show_with_verbose(lab, capsys, monkeypatch):
    """pydicom and tifffile warn through `warnings` and their loggers, with paths of the venv:
    cron would mail them at every run. They are debug records of paw's log."""
    from paw import job

    real_scan = job.scan

    def noisy_scan(*args, **kwargs):
        logging.getLogger("pydicom").warning("Expected explicit VR, but found implicit VR")
        logging.getLogger("tifffile").error("TiffPage 3: invalid tag")
        logging.getLogger("PIL.PngImagePlugin").debug("STREAM b'IHDR'")
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(job, "scan", noisy_scan)
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    assert lab.run("-q") == 0
    assert capsys.readouterr().err == ""
    aperio.write(os.path.join(lab.inbox, "b.svs"))
    assert lab.run() == 0
    err = capsys.readouterr().err
    assert "pydicom" not in err and "tifffile" not in err and "site-packages" not in err
    assert "anonymized b.svs" in err                                   # paw's own lines stay
    assert lab.run("-v") == 0
    err = capsys.readouterr().err
    assert "DEBUG: Expected explicit VR" in err and "DEBUG: TiffPage 3: invalid tag" in err
    assert "STREAM" not in err  # their debug chatter: never


def test_python_warnings_of_libraries_are_debug_records(lab):
    """`warnings.warn` in a library (pytest would catch these in-process): with `-W always`
    every warning is emitted, and none reaches stderr but with -v, as a debug line."""
    wrapper = os.path.join(lab.base, "noisy.py")
    with open(wrapper, "w") as fh:
        fh.write("import runpy, sys, warnings\n"
                 f"sys.path.insert(0, {os.path.join(ROOT, 'lib')!r})\n"
                 "import paw.job as job\n"
                 "real = job.scan\n"
                 "def scan(*a, **k):\n"
                 "    warnings.warn('a library warning from /venv/site-packages', DeprecationWarning)\n"
                 "    return real(*a, **k)\n"
                 "job.scan = scan\n"
                 f"sys.argv = [{os.path.join(ROOT, 'paw.py')!r}] + sys.argv[1:]\n"
                 f"runpy.run_path({os.path.join(ROOT, 'paw.py')!r}, run_name='__main__')\n")
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    for args in (["run", "-q"], ["run"], ["status"]):
        result = subprocess.run([sys.executable, "-W", "always", wrapper, "--config", lab.config, *args],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "site-packages" not in result.stderr, result.stderr
    assert len(lab.outbox_files()) == 1
    result = subprocess.run([sys.executable, "-W", "always", wrapper, "--config", lab.config, "-v"],
                            capture_output=True, text=True, timeout=120)
    assert "DEBUG: " in result.stderr and "DeprecationWarning: a library warning from /venv/site-packages" \
        in result.stderr


def test_a_missing_package_exits_2_with_the_exact_install_command(lab):
    code = ("import sys; sys.modules['yaml'] = None; sys.path.insert(0, sys.argv[1]); "
            "from paw.cli import main; sys.exit(main(['--config', sys.argv[2], 'status']))")
    result = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "lib"), lab.config],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"paw: the Python package that provides 'yaml' is not installed for {sys.executable}; install it "
        f"with: {sys.executable} -m pip install -r {os.path.join(ROOT, 'requirements.txt')}")


def _big_ledger(lab, rows=4000):
    from paw.ledger import COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for i in range(rows):
        writer.writerow([f"2026-01-01T00:00:{i % 60:02d}+00:00", f"job{i:08d}", "anonymized",
                         f"S26-{i:06d} A1 HE.svs", f"PAW-{i:010d}.svs", "aperio", "", "removed", "1", "0.1",
                         "", "", f"PAW-{i:010d}", "", ""])
    with open(lab.ledger, "w", encoding="utf-8-sig", newline="") as fh:
        fh.write(buffer.getvalue())
    os.chmod(lab.ledger, 0o600)


def test_a_closed_pipe_ends_quietly(lab):
    _big_ledger(lab)
    for args in (["ledger", "export", "--csv"], ["status", "--json"], ["ledger", "find", "PAW-"]):
        process = subprocess.Popen([sys.executable, os.path.join(ROOT, "paw.py"), "--config", lab.config,
                                    *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process.stdout.read(10)   # `| head -c 10`
        process.stdout.close()
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
        if args[0] == "status" and code == 0:
            continue  # status fits in the pipe's buffer: it was written whole before the close
        assert code == 141 and err == "", (args, code, err)


def test_ledger_export_to_stdout_has_the_bom_the_file_has(lab, tmp_path):
    aperio.write(os.path.join(lab.inbox, "Müller.svs"))
    assert lab.run() == 0
    out = subprocess.run([sys.executable, os.path.join(ROOT, "paw.py"), "--config", lab.config, "ledger",
                          "export", "--csv"], capture_output=True, env={**os.environ, "LC_ALL": "C"},
                         timeout=60)
    assert out.returncode == 0 and out.stdout.startswith(b"\xef\xbb\xbftime_utc,job,")
    assert "Müller.svs".encode() in out.stdout       # UTF-8 whatever the locale
    target = tmp_path / "export.csv"
    assert lab.run("ledger", "export", "--csv", str(target)) == 0
    assert target.read_bytes() == out.stdout        # the same bytes, one BOM each


def test_ledger_find_by_pseudonym_case_number_case_pseudonym_or_name(lab, capsys):
    lab.write_config(extra=CASES)
    os.mkdir(os.path.join(lab.inbox, "ProjectSmith"))
    aperio.write(os.path.join(lab.inbox, "ProjectSmith", "S26-050002 A1 HE.svs"))
    aperio.write(os.path.join(lab.inbox, "ProjectSmith", "S26-050002 B2 PAS.svs"))
    aperio.write(os.path.join(lab.inbox, "S26-050003 A1 HE.svs"))
    with open(os.path.join(lab.inbox, "S26-050002 notes.pdf"), "wb") as fh:
        fh.write(b"%PDF-1.4\n")
    assert lab.run() == 3
    rows = {r["original"]: r for r in lab.rows()}
    smith = rows["ProjectSmith/S26-050002 A1 HE.svs"]
    capsys.readouterr()

    def found(text, *options):
        assert lab.run("ledger", "find", text, *options) == 0
        return capsys.readouterr().out.splitlines()

    by_case = found("s26-050002")       # the case number, in another spelling
    assert len(by_case) == 3 and all("S26-050002" in line for line in by_case)
    assert any(line.endswith(f"ProjectSmith/S26-050002 A1 HE.svs -> outbox/ProjectSmith/{smith['output']} "
                             f"(pseudonym {smith['pseudonym']}, case {smith['case']})") for line in by_case)
    assert any("S26-050002 notes.pdf: quarantined (not a slide (PDF document))" in x for x in by_case)
    assert len(found(smith["case"])) == 2                 # the case pseudonym: both slides
    [one] = found(smith["pseudonym"])                     # the label's QR code
    assert "S26-050002 A1 HE.svs" in one
    assert found("S26-999999") == ["no ledger row holds 'S26-999999'"]
    lines = found(smith["pseudonym"], "--csv")
    assert lines[0].startswith("\ufefftime_utc,job,") and len(lines) == 2
