"""Running paw for real: systemd units, the Synology script, Sentry without patient data, logs."""

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT
from synth import aperio

PATIENT_NAMES = ["DOE^JANE 1961-04-02 S26-047119.svs", "SMITH^JOHN broken S26-000777.svs"]
SECRETS = ["DOE", "JANE", "SMITH", "1961-04-02", "S26-047119", "S26-000777", "BC-S26"]


def exec_start(lab):
    """The unit's ExecStart line, with the install paths mapped onto this checkout and lab."""
    with open(os.path.join(ROOT, "systemd", "paw.service")) as fh:
        line = next(x for x in fh if x.startswith("ExecStart="))
    return (line.split("=", 1)[1].strip().replace("/opt/paw/.venv/bin/python", sys.executable)
            .replace("/etc/paw/paw.yaml", lab.config).replace("/opt/paw", ROOT))


def test_systemd_units_verify_without_any_warning(lab, tmp_path):
    if not shutil.which("systemd-analyze"):
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze missing: .ci/run installs Debian's systemd package")
        pytest.skip("systemd-analyze not installed")
    for name in ("paw.service", "paw.timer"):
        with open(os.path.join(ROOT, "systemd", name)) as fh:
            text = fh.read()
        if name == "paw.service":  # ExecStart must point at files that exist for verify
            text = text.replace(text.split("ExecStart=", 1)[1].split("\n", 1)[0], exec_start(lab))
        (tmp_path / name).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", "paw.service", "paw.timer"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def _unit_settings():
    with open(os.path.join(ROOT, "systemd", "paw.service")) as fh:
        pairs = [line.strip().split("=", 1) for line in fh if "=" in line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_the_readmes_systemd_configuration_fits_the_unit(tmp_path):
    """The README's config block for the unit: state_dir on the inbox's file system inside
    ReadWritePaths, the ledger in the StateDirectory, the unit's --config the block's file; the
    unit keeps CAP_LEASE (the lease check on the technicians' files) and nothing else. Mapped
    onto a temporary root, the block is a configuration paw runs with."""
    import re
    from conftest import Lab
    unit = _unit_settings()
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        [block] = [b for b in re.findall(r"```yaml\n(.*?)```", fh.read(), re.S) if "/etc/paw/paw.yaml" in b]
    import yaml
    values = yaml.safe_load(block)
    writable = unit["ReadWritePaths"].split() + ["/var/lib/" + unit["StateDirectory"]]
    for path in (values["inbox"], values["outbox"], values["quarantine"], values["state_dir"],
                 values["ledger"]["csv"]):
        assert any(path.startswith(w.rstrip("/") + "/") for w in writable), path
    assert os.path.dirname(values["state_dir"]) == os.path.dirname(values["inbox"])
    assert values["ledger"]["csv"].startswith("/var/lib/" + unit["StateDirectory"] + "/")
    assert unit["ExecStart"].endswith("--config /etc/paw/paw.yaml")
    assert unit["AmbientCapabilities"] == unit["CapabilityBoundingSet"] == "CAP_LEASE"
    lab = Lab(tmp_path / "srv" / "slides")
    os.makedirs(tmp_path / "var" / "lib" / "paw")
    with open(lab.config, "w") as fh:
        fh.write(block.replace("/srv/", f"{tmp_path}/srv/").replace("/var/", f"{tmp_path}/var/")
                 + "stability: {min_age_seconds: 0, unchanged_runs: 1}\n")
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    assert lab.run() == 0 and len(lab.outbox_files()) == 1
    assert os.path.exists(tmp_path / "var" / "lib" / "paw" / "ledger.csv")
    assert os.path.isdir(tmp_path / "srv" / "slides" / ".paw-state")


def test_run_as_the_systemd_unit_starts_it(lab):
    """Same ExecStart line, the bare environment systemd gives a service."""
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    result = subprocess.run(shlex.split(exec_start(lab)), capture_output=True, text=True,
                            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                            cwd="/", timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(lab.outbox_files()) == 1 and lab.rows()[0]["status"] == "anonymized"


def test_synology_task_script_with_a_minimal_environment(lab):
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    result = subprocess.run(["/bin/bash", os.path.join(ROOT, "synology", "paw-task.sh")],
                            env={"PAW_DIR": ROOT, "PAW_PYTHON": sys.executable, "PAW_CONFIG": lab.config},
                            capture_output=True, text=True, cwd="/", timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(lab.outbox_files()) == 1


def test_sentry_is_never_imported_without_it_being_enabled(lab):
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from paw.cli import main; "
            "rc = main(['--config', sys.argv[2]]); print(rc, 'sentry_sdk' in sys.modules)")
    env = dict(os.environ, SENTRY_DSN="https://key@sentry.invalid/1")
    result = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "lib"), lab.config],
                            capture_output=True, text=True, env=env)
    assert result.stdout.split() == ["0", "False"], result.stderr


def test_sentry_enabled_without_a_dsn_is_a_config_error(lab, monkeypatch):
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    lab.write_config(extra="sentry: {enabled: true}\n")
    assert lab.run() == 2


def sentry_recording(lab, monkeypatch):
    """A Sentry monitor whose transport records envelopes in memory."""
    from sentry_sdk.transport import Transport

    from paw.config import load
    from paw.monitoring import Monitor

    sent = []

    class Recorder(Transport):
        def capture_envelope(self, envelope):
            sent.append(envelope.serialize().decode("utf-8", "replace"))

    lab.write_config(extra="sentry: {enabled: true, dsn: 'https://key@sentry.invalid/1', site: lab-a}\n")
    monkeypatch.setattr(sys, "argv", ["paw.py", "--config", f"/srv/{PATIENT_NAMES[0]}/paw.yaml"])
    config = load(lab.config, None)
    return config, Monitor(config.sentry, transport=Recorder), sent


def test_sentry_events_and_check_ins_carry_no_patient_data(lab, monkeypatch):
    import errno

    from paw import job, slide

    aperio.write(os.path.join(lab.inbox, PATIENT_NAMES[0]))
    with open(os.path.join(lab.inbox, PATIENT_NAMES[1]), "wb") as fh:
        fh.write(b"II*\0 DOE^JANE")
    aperio.write(os.path.join(lab.inbox, "ZZ DOE^JANE permission.svs"))
    real_start = slide.start

    def start(config, unit, ledger):
        if unit.main.startswith("ZZ"):  # an OSError whose text carries the patient's path
            raise OSError(errno.EACCES, "Permission denied", os.path.join(lab.inbox, unit.main))
        return real_start(config, unit, ledger)

    monkeypatch.setattr(slide, "start", start)
    config, monitor, sent = sentry_recording(lab, monkeypatch)
    try:
        assert job.run(config, monitor=monitor) == 1
        monkeypatch.setattr(job, "_remember", lambda *a: (_ for _ in ()).throw(
            ValueError(f"bad value DOE^JANE in {lab.ledger}")))
        with pytest.raises(ValueError):
            job.run(config, monitor=monitor)
    finally:
        monitor.close()

    text = "\n".join(sent)
    for secret in SECRETS + [lab.base, "argv", os.uname().nodename]:
        assert secret not in text, secret
    items = []
    for envelope in sent:  # header line, then (item header, payload) pairs
        lines = envelope.splitlines()[1:]
        items += [json.loads(payload) for header, payload in zip(lines[::2], lines[1::2])
                  if json.loads(header).get("type") in ("event", "check_in")]
    check_ins = [i["status"] for i in items if i.get("type") == "check_in"]
    assert check_ins == ["in_progress", "error", "in_progress", "error"]
    messages = [i.get("message") for i in items if "message" in i]
    assert "quarantined %s: %s" in messages
    assert any(m.startswith("could not finish a slide") for m in messages)
    types = [v["type"] for i in items for v in (i.get("exception") or {}).get("values", [])]
    assert types == ["ValueError"]
    assert all(i.get("server_name", "lab-a") == "lab-a" for i in items)


def test_log_file_and_one_line_per_slide(lab):
    log = os.path.join(lab.base, "paw.log")
    lab.write_config(extra=f"log: {{file: {log}}}\n")
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    with open(os.path.join(lab.inbox, "b.svs"), "wb") as fh:
        fh.write(b"junk")
    result = lab.run_subprocess()
    assert result.returncode == 3
    lines = [x for x in result.stderr.splitlines() if x]
    assert len(lines) == 3  # anonymized a, quarantined b, the summary
    assert "anonymized a.svs -> PAW-" in lines[0] and "quarantined b.svs: " in lines[1]
    assert "run: 1 anonymized, 1 quarantined, 0 failed, 0 waiting" in lines[2]
    with open(log) as fh:
        assert len(fh.read().splitlines()) == 3


def test_status_shows_outcomes_and_quarantine_reasons(lab, capsys):
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    with open(os.path.join(lab.inbox, "b.svs"), "wb") as fh:
        fh.write(b"junk")
    lab.run()
    capsys.readouterr()
    lab.run("status")
    out = capsys.readouterr().out
    assert "anonymized: a.svs -> PAW-" in out
    assert "b.svs: not a slide (text file)" in out


def test_an_idle_tick_imports_no_parsing_code(lab):
    """cron pays for every import: with nothing stable, neither numpy nor tifffile is loaded."""
    with open(os.path.join(lab.inbox, "arriving.svs"), "wb") as fh:
        fh.write(b"x")
    lab.write_config(min_age=3600)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from paw.cli import main; "
            "rc = main(['--config', sys.argv[2], '-q']); "
            "print(rc, sorted(m for m in ('numpy', 'tifffile', 'paw.slide') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "lib"), lab.config],
                            capture_output=True, text=True)
    assert result.stdout.strip() == "0 []", result.stdout + result.stderr


def test_no_log_call_formats_values_into_its_template():
    """Sentry gets log *templates* only; a name formatted into one (an f-string, % or .format
    before the call) would carry it out. Every log call must pass values as arguments."""
    import re
    call = re.compile(r"\blog(?:ging\.getLogger\([^)]*\))?\.(?:debug|info|warning|error|exception|critical)\(")
    offenders = []
    for root, _, files in os.walk(os.path.join(ROOT, "lib", "paw")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(root, name), encoding="utf-8") as fh:
                    for number, line in enumerate(fh, 1):
                        match = call.search(line)
                        if match and re.match(r'\s*(f"|f\'|"[^"]*"\s*%|"[^"]*"\.format)', line[match.end():]):
                            offenders.append(f"{name}:{number}")
    assert offenders == []


def test_missing_real_slides_are_summed_up_and_paw_fixtures_points_at_them(tmp_path):
    """Without the fixtures the real-slide tests skip, and pytest says so in one line (not only
    with -rs); PAW_FIXTURES points the tests at fixtures kept anywhere."""
    from conftest import SHARED_FIXTURES
    test = os.path.join(ROOT, "tests", "test_formats_tiff.py") + "::test_aperio_real_sample"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
    empty = tmp_path / "none"
    empty.mkdir()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env=dict(os.environ, PAW_FIXTURES=str(empty)))
    assert result.returncode == 0, result.stdout
    assert f"1 tests skipped: the real sample slides are not in {empty} (set PAW_FIXTURES=" in result.stdout
    source = os.path.join(SHARED_FIXTURES, "aperio", "cmu-1-small-region.svs")
    if not os.path.exists(source):
        pytest.skip("real sample slide aperio/cmu-1-small-region.svs not available: cannot show it found")
    elsewhere = tmp_path / "elsewhere" / "aperio"
    elsewhere.mkdir(parents=True)
    shutil.copyfile(source, elsewhere / "cmu-1-small-region.svs")
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env=dict(os.environ, PAW_FIXTURES=str(elsewhere.parent)))
    assert result.returncode == 0 and "1 passed" in result.stdout and "skipped" not in result.stdout, \
        result.stdout
