"""Configuration mistakes paw must refuse (exit 2, one line): places compared as the file system
sees them, not as strings; a config file far too big or an alias bomb; the log file private."""

import os
import resource
import stat

import pytest

from synth import aperio


def config_error(lab, extra):
    lab.write_config(extra=extra)
    result = lab.run_subprocess()
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("paw: configuration error: ")
    return lines[0]


@pytest.mark.parametrize("key", ["inbox", "outbox", "quarantine", "state_dir"])
@pytest.mark.parametrize("spelled", ["/", "link-to-root"])
def test_the_root_folder_is_refused(lab, key, spelled):
    """Only loaded, never run: should the check ever break, a run would move files out of /."""
    from paw import config
    if spelled != "/":
        os.symlink("/", os.path.join(lab.base, spelled))
    lab.write_config(extra=f"{key}: {spelled}\n")
    with pytest.raises(config.ConfigError, match="is the root folder /"):
        config.load(lab.config, None)


def test_an_outbox_that_is_a_link_to_the_inbox_is_refused(lab):
    """As strings they differ; paw would anonymize its own output again and again."""
    os.rmdir(lab.outbox)
    os.symlink(lab.inbox, lab.outbox)
    assert "'outbox'" in config_error(lab, "") and "must not be the same as or inside" in \
        config_error(lab, "")


def test_a_share_reached_through_a_link_inside_another_is_refused(lab, tmp_path):
    link = os.path.join(lab.base, "elsewhere")
    os.symlink(os.path.join(lab.inbox), link)
    os.makedirs(os.path.join(lab.inbox, "q"))
    message = config_error(lab, f"quarantine: {link}/q\n")
    assert "'quarantine'" in message and "inside 'inbox'" in message


def test_a_bind_mount_like_alias_is_found_by_inode(lab, monkeypatch):
    """Two paths, no link between them, one folder (a bind mount): the same device and inode."""
    from paw import config
    real_stat = os.stat

    def stat_(path, *args, **kwargs):  # /mnt/alias is the inbox, as a bind mount would show it
        return real_stat(lab.inbox if str(path) == "/mnt/alias" else path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_)
    with pytest.raises(config.ConfigError, match="'outbox'.*inside 'inbox'|'inbox'.*inside 'outbox'"):
        config._check_places({"inbox": lab.inbox, "outbox": "/mnt/alias", "quarantine": lab.quarantine},
                             {"state_dir": lab.state, "ledger.csv": lab.ledger})


def test_an_inbox_inside_the_state_folder_is_refused(lab):
    os.makedirs(os.path.join(lab.state, "in"))
    message = config_error(lab, f"inbox: {lab.state}/in\n")
    assert "'inbox'" in message and "inside 'state_dir'" in message


def test_a_log_file_inside_a_share_is_refused(lab):
    message = config_error(lab, "log: {file: outbox/paw.log}\n")
    assert "'log.file' must not be inside 'outbox'" in message


def test_the_log_file_is_created_private_whatever_the_umask(lab):
    """It holds original names; cron's umask 022 would make it 0644. Rotated files too."""
    log = os.path.join(lab.base, "paw.log")
    lab.write_config(extra=f"log: {{file: {log}, max_bytes: 200, backups: 2}}\n")
    for i in range(3):
        with open(os.path.join(lab.inbox, f"b{i}.svs"), "wb") as fh:
            fh.write(b"junk")
    previous = os.umask(0o022)
    try:
        assert lab.run() == 3
    finally:
        os.umask(previous)
    made = [n for n in os.listdir(lab.base) if n.startswith("paw.log")]
    assert len(made) >= 2  # rotated at least once
    for name in made:
        assert stat.S_IMODE(os.stat(os.path.join(lab.base, name)).st_mode) == 0o600, name


BOMB = """
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
ignore: [*e, *e, *e, *e, *e, *e, *e, *e, *e]
"""


@pytest.mark.parametrize("text, expected", [
    (BOMB, "more than 10000 values"),                               # 9^6 paths to walk
    ('a: &a "x"\nignore: [' + ", ".join(["*a"] * 60) + "]\n", "YAML aliases"),
    ("ignore: [" + ", ".join(f'"p{i}"' for i in range(1500)) + "]\n", "at most 1000"),
    ("naming: {prefix: [" + '"long value", ' * 5000 + "]}\n", "got ['long value'"),
    ("# padding\n" * 40000, "larger than 256 KiB"),
])
def test_a_huge_configuration_is_refused_quickly_with_a_short_message(lab, text, expected):
    """An alias bomb under `ignore` took 0.9 GB and gave a 312 MB message: bounded now."""
    with open(lab.config, "w") as fh:
        fh.write(text)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = lab.run_subprocess()
    assert result.returncode == 2, result.stderr[:500]
    assert expected in result.stderr and len(result.stderr) < 400, result.stderr[:500]
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < max(before, 200 << 10)


def test_a_long_unknown_key_is_cut_short(lab):
    with open(lab.config, "w") as fh:
        fh.write("k" * 100000 + ": 1\n")
    result = lab.run_subprocess()
    assert result.returncode == 2 and len(result.stderr) < 400


def test_a_sane_config_still_runs(lab):
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    lab.write_config(extra=f"state_dir: {lab.state}\nlog: {{file: {lab.base}/paw.log}}\n")
    assert lab.run() == 0 and len(lab.outbox_files()) == 1
