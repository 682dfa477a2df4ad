"""File-system tricks and failures: odd names, races, read-only and full targets, permissions."""

import errno
import os
import stat
import subprocess
import sys
import time

import pytest

from checks import leaked, refuse_claims
from synth import aperio

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.mark.parametrize("name", ["line\nbreak.svs", "bad-\udcff-utf8.svs", "x" * 251 + ".svs",
                                  "\u202etxt.svs"])
def test_awkward_names_are_processed_and_logged_on_one_line(lab, name):
    planted = aperio.write(os.path.join(lab.inbox, name))
    result = lab.run_subprocess()
    assert result.returncode == 0, result.stderr
    [output] = lab.outbox_files()
    assert leaked(os.path.join(lab.outbox, output), planted) == []
    assert len([line for line in result.stderr.splitlines() if line]) == 2  # slide + summary
    [row] = lab.rows()
    assert row["status"] == "anonymized" and "\n" not in row["original"]


def test_a_file_replaced_after_the_scan_is_not_claimed(lab, monkeypatch):
    from paw import inbox, slide
    path = os.path.join(lab.inbox, "x.svs")
    aperio.write(path)
    real = slide.start

    def start(config, unit, ledger):  # the technician overwrites the slide just now
        with open(path, "ab") as fh:
            fh.write(b"more")
        return real(config, unit, ledger)

    monkeypatch.setattr(slide, "start", start)
    assert lab.run() == 0
    assert os.listdir(lab.inbox) == ["x.svs"] and lab.rows() == [] and lab.staging() == []
    monkeypatch.setattr(slide, "start", real)
    assert lab.run() == 0 and len(lab.outbox_files()) == 1


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES])
def test_outbox_that_cannot_be_written_loses_nothing(lab, monkeypatch, code):
    from paw import fsops
    real = fsops.move

    def move(src, dst):
        if dst.startswith(lab.outbox):
            raise OSError(code, os.strerror(code), dst)
        return real(src, dst)

    planted = aperio.write(os.path.join(lab.inbox, "x.svs"))
    monkeypatch.setattr(fsops, "move", move)
    assert lab.run() == 1
    assert lab.outbox_files() == [] and len(lab.staging()) == 1 and lab.rows() == []
    monkeypatch.setattr(fsops, "move", real)
    assert lab.run() == 0
    [output] = lab.outbox_files()
    assert leaked(os.path.join(lab.outbox, output), planted) == []
    assert len(lab.rows()) == 1 and lab.staging() == []


def test_disk_full_during_a_cross_device_copy(lab):
    """RLIMIT_FSIZE makes the copy into staging fail part-way, as a full disk would."""
    import resource
    import signal
    from conftest import ROOT
    aperio.write(os.path.join(lab.inbox, "x.svs"), 2048, 2048)
    half = os.path.getsize(os.path.join(lab.inbox, "x.svs")) // 2

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (half, half))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then write() fails with EFBIG

    env = dict(os.environ, PAW_FAKE_EXDEV="1", PAW_CRASH_POINT="never")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "crashrun.py"),
                             "--config", lab.config], env=env, capture_output=True, text=True,
                            preexec_fn=small_disk)
    assert result.returncode == 1, result.stderr
    assert "File too large" in result.stderr
    assert lab.outbox_files() == [] and lab.rows() == []
    assert os.listdir(lab.inbox) == ["x.svs"]  # the partial copy went, the original stayed
    assert lab.run() == 0 and len(lab.outbox_files()) == 1 and len(lab.rows()) == 1


def test_outbox_files_take_the_group_of_a_setgid_outbox(lab):
    os.chown(lab.outbox, -1, 4242)
    os.chmod(lab.outbox, 0o2775)
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    assert lab.run() == 0
    [output] = lab.outbox_files()
    assert os.stat(os.path.join(lab.outbox, output)).st_gid == 4242
    assert stat.S_IMODE(os.stat(lab.outbox).st_mode) == 0o2775  # paw never chmods the share


# --- paw's own files never meet a slide's name -------------------------------------------------

def test_a_reason_file_never_replaces_a_quarantined_slide(lab):
    """`x.svs.reason.txt` in the quarantine is a (broken) slide quarantined by an older paw, which
    took such names for slides; now `x.svs` is quarantined too: its reason file takes another
    name, the first slide stays as it was."""
    with open(os.path.join(lab.quarantine, "x.svs.reason.txt"), "wb") as fh:
        fh.write(b"II*\0first slide, broken")
    with open(os.path.join(lab.inbox, "x.svs"), "wb") as fh:
        fh.write(b"II*\0second slide, broken")
    assert lab.run() == 3
    with open(os.path.join(lab.quarantine, "x.svs.reason.txt"), "rb") as fh:
        assert fh.read() == b"II*\0first slide, broken"
    names = sorted(os.listdir(lab.quarantine))
    assert names == ["x-2.svs", "x-2.svs.reason.txt", "x.svs.reason.txt"]
    with open(os.path.join(lab.quarantine, "x-2.svs"), "rb") as fh:
        assert fh.read() == b"II*\0second slide, broken"


def test_a_file_named_like_a_reason_file_that_paw_did_not_write_stays_in_the_inbox(lab):
    """A reason file is never a slide, and paw removes one from the inbox once its slide is gone;
    but only what paw writes there (one line of text): anything else under such a name is left,
    ignored, for a person to look at."""
    foreign = {"a.svs.reason.txt": b"II*\0a slide under a strange name",
               "b.svs.reason.txt": b"two\nlines\n", "c.svs.reason.txt": b"no newline",
               "d.svs.reason.txt": b"\xff\xfeu\0t\0f\0-\x001\x006\0\n\0"}
    for name, data in foreign.items():
        with open(os.path.join(lab.inbox, name), "wb") as fh:
            fh.write(data)
    with open(os.path.join(lab.inbox, "e.svs.reason.txt"), "wb") as fh:
        fh.write("not a slide (PDF document) \u2014 moved back alone\n".encode())
    assert lab.run() == 0
    assert sorted(os.listdir(lab.inbox)) == sorted(foreign) and lab.rows() == []
    for name, data in foreign.items():
        with open(os.path.join(lab.inbox, name), "rb") as fh:
            assert fh.read() == data


def test_a_reason_file_is_never_written_over_a_foreign_file(lab, monkeypatch):
    """Between the choice of names and the reason file, someone puts a file under its name."""
    from paw import durable
    real = durable.create_new

    def create_new(path, data, **kwargs):
        if path.endswith("x.svs.reason.txt") and not os.path.exists(path):
            with open(path, "wb") as fh:
                fh.write(b"not paw's")
        return real(path, data, **kwargs)

    monkeypatch.setattr(durable, "create_new", create_new)
    with open(os.path.join(lab.inbox, "x.svs"), "wb") as fh:
        fh.write(b"junk")
    assert lab.run() == 3
    with open(os.path.join(lab.quarantine, "x.svs.reason.txt"), "rb") as fh:
        assert fh.read() == b"not paw's"
    assert "x.svs.reason-2.txt" in os.listdir(lab.quarantine)


PAWS_OWN_NAMES = ["job.json", "job.json.tmp", ".paw-partial-x.svs", ".paw-partial-claim", "slide", "undo"]


@pytest.mark.parametrize("kill", [False, True])
def test_slides_named_like_paws_own_files(lab, kill):
    """With nothing ignored, slides called like paw's journal, its partial copies or its
    folders are processed like any other; none is overwritten or deleted, also when a run is
    killed after claiming them."""
    import signal
    from conftest import ROOT
    lab.write_config(extra="ignore: []\n")
    planted = {}
    for name in PAWS_OWN_NAMES:
        planted[name] = aperio.write(os.path.join(lab.inbox, name))
    if kill:
        env = dict(os.environ, PAW_CRASH_POINT="after-claim", PAW_CRASH_NTH="3", PAW_FAKE_EXDEV="1")
        crashed = lab.run_subprocess(env=env, wrapper=os.path.join(ROOT, "tests", "crashrun.py"))
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    result = lab.run_subprocess()
    assert result.returncode == 0, result.stderr
    rows = lab.rows()
    assert sorted(r["original"] for r in rows) == sorted(PAWS_OWN_NAMES)
    assert {r["status"] for r in rows} == {"anonymized"}
    assert len(lab.outbox_files()) == len(PAWS_OWN_NAMES) and lab.staging() == []
    for row in rows:
        assert leaked(os.path.join(lab.outbox, row["output"]), planted[row["original"]]) == []


def test_state_folder_removed_mid_run_comes_back_private(lab, monkeypatch):
    """Someone deletes the state folder while paw works (what was in work goes with it: see
    README); the next slide's job folder brings state and staging back as 0700, not 0755."""
    import shutil
    from paw import slide
    os.umask(0o022)
    real = slide.start
    calls = []

    def start(config, unit, ledger):
        calls.append(unit.main)
        if len(calls) == 2:
            shutil.rmtree(lab.state)
        return real(config, unit, ledger)

    monkeypatch.setattr(slide, "start", start)
    aperio.write(os.path.join(lab.inbox, "a.svs"))
    aperio.write(os.path.join(lab.inbox, "b.svs"))
    lab.run()
    assert len(calls) == 2 and len(lab.outbox_files()) == 2
    for folder in (lab.state, os.path.join(lab.state, "staging")):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700, folder


# --- one bad entry neither stops nor clogs the runs ---------------------------------------------

NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def run_without_override(lab, *args):
    """paw as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: permission bits apply to it
    as to any user (root owns the lab, so only what a test locks is locked)."""
    from conftest import ROOT
    try:
        usable = subprocess.run(NO_DAC + ["true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        usable = False
    if not usable or os.geteuid() != 0:
        pytest.skip("needs root and setpriv (util-linux) to drop the permission override")
    return subprocess.run(NO_DAC + [sys.executable, os.path.join(ROOT, "paw.py"), "--config",
                                    lab.config, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", [0o000, 0o600])
def test_an_unreadable_folder_is_skipped_with_one_warning(lab, mode):
    """0o000: the folder cannot be listed; 0o600: listed, but its entries cannot be looked at."""
    planted = aperio.write(os.path.join(lab.inbox, "a.svs"))
    secret = os.path.join(lab.inbox, "secret")
    os.mkdir(secret)
    aperio.write(os.path.join(secret, "b.svs"))
    os.chmod(secret, mode)
    try:
        result = run_without_override(lab)
        again = run_without_override(lab)
        status = run_without_override(lab, "status")
    finally:
        os.chmod(secret, 0o755)
    assert result.returncode == 0, result.stderr
    [output] = lab.outbox_files()
    assert leaked(os.path.join(lab.outbox, output), planted) == []
    warnings = [x for x in result.stderr.splitlines() if "WARNING" in x]
    assert len(warnings) == 1 and "secret" in warnings[0] and "Permission denied" in warnings[0]
    assert again.returncode == 0 and "WARNING" not in again.stderr  # reported once, not every run
    assert "skipped in the inbox: secret" in status.stdout and "Permission denied" in status.stdout
    assert os.listdir(secret) == ["b.svs"]


def test_a_path_past_path_max_is_skipped_with_one_warning(lab):
    planted = aperio.write(os.path.join(lab.inbox, "a.svs"))
    fd = os.open(lab.inbox, os.O_RDONLY | os.O_DIRECTORY)
    depth = 0
    while depth * 201 < 4200:  # folders nested past PATH_MAX (4096 bytes)
        os.mkdir("d" * 200, dir_fd=fd)
        deeper = os.open("d" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd, depth = deeper, depth + 1
    with open(os.open("deep.svs", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as fh:
        fh.write(b"II*\0")
    os.close(fd)
    result = lab.run_subprocess()
    assert result.returncode == 0, result.stderr
    assert len(lab.outbox_files()) == 1
    assert leaked(os.path.join(lab.outbox, lab.outbox_files()[0]), planted) == []
    assert "File name too long" in result.stderr and "skipped" in result.stderr


def test_a_slide_in_a_folder_paw_cannot_change_is_never_claimed(lab):
    """A folder the run may read but not change: the rename out of it would fail (EACCES). The
    slide is not claimed: every run exits 0, one warning names the folder, its owner and mode
    and the fix; status names it; nothing is staged; once the folder is fixed it goes."""
    locked = os.path.join(lab.inbox, "locked")
    os.mkdir(locked)
    path = os.path.join(locked, "x.svs")
    aperio.write(path)
    os.chmod(locked, 0o555)
    try:
        results = [run_without_override(lab) for _ in range(3)]
        status = run_without_override(lab, "status")
    finally:
        os.chmod(locked, 0o755)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert "locked/x.svs is left in the inbox: paw's user root (uid 0) cannot move it out of the " \
           "folder locked (owner root, mode 0555); run paw as the shares' owner" in results[0].stderr
    assert "WARNING" not in results[1].stderr + results[2].stderr
    assert lab.staging() == [] and os.listdir(locked) == ["x.svs"] and lab.rows() == []
    assert "left in the inbox: locked/x.svs: paw's user root (uid 0) cannot move it out" in status.stdout
    assert lab.run() == 0 and len(lab.outbox_files()) == 1
    assert "left in the inbox" not in lab.run_subprocess("status").stdout


def test_a_slide_that_cannot_be_claimed_is_left_alone_after_three_attempts(lab, monkeypatch):
    """A claim the system refuses although paw's user may write the folder (an ACL, a race with
    a chmod): runs 1 and 2 fail (exit 1) with the attempt counted, run 3 leaves the slide alone
    with one warning, later runs are quiet; no staging job piles up; saving the slide again
    starts afresh."""
    import logging
    path = os.path.join(lab.inbox, "x.svs")
    aperio.write(path)
    refuse_claims(monkeypatch, lab.inbox)
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append((len(codes), record.levelname, record.getMessage()))
    logging.getLogger("paw").addHandler(handler)
    codes = []
    try:
        for _ in range(4):
            codes.append(lab.run())
    finally:
        logging.getLogger("paw").removeHandler(handler)
    assert codes == [1, 1, 0, 0], logged
    assert any("attempt 1 of 3" in m and "Permission denied" in m for n, _, m in logged if n == 0)
    assert any("left alone until it changes" in m for n, _, m in logged if n == 2)
    assert not [m for n, level, m in logged if n == 3 and level in ("WARNING", "ERROR")]
    assert lab.staging() == [] and os.listdir(lab.inbox) == ["x.svs"] and lab.rows() == []
    assert "left alone until it changes: x.svs" in lab.run_subprocess("status").stdout
    monkeypatch.undo()  # the claims work again
    os.utime(path)  # saved again (here: touched): tried afresh
    assert lab.run() == 0 and len(lab.outbox_files()) == 1


SPECIAL = {
    "fifo": lambda path: os.mkfifo(path),
    "char-device": lambda path: os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 5)),  # /dev/zero
    "socket": lambda path: __import__("socket").socket(__import__("socket").AF_UNIX).bind(path),
}


@pytest.mark.parametrize("kind", sorted(SPECIAL))
@pytest.mark.parametrize("where", ["inbox", "mrxs-folder", "folder-named-like-a-slide"])
def test_special_files_are_never_opened_or_copied(lab, kind, where):
    """A FIFO would block the run until the time limit, /dev/zero copied across file systems
    would fill the state volume: recognised by lstat, reported once, left alone. Run with every
    move a copy, and a file-size limit so that a copy of the device fails fast instead."""
    import resource
    import signal
    from conftest import ROOT
    from synth import mrxs
    planted = aperio.write(os.path.join(lab.inbox, "good.svs"))
    if where == "inbox":
        special = os.path.join(lab.inbox, "x.svs")
    elif where == "mrxs-folder":
        mrxs.write(os.path.join(lab.inbox, "m.mrxs"))
        special = os.path.join(lab.inbox, "m", "Data0001.dat")
    else:
        os.mkdir(os.path.join(lab.inbox, "y.svs"))
        special = os.path.join(lab.inbox, "y.svs", "z.svs")
    try:
        SPECIAL[kind](special)
    except PermissionError:
        pytest.skip(f"making a {kind} needs root here")

    def limits():
        resource.setrlimit(resource.RLIMIT_FSIZE, (50 << 20, 50 << 20))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    env = dict(os.environ, PAW_FAKE_EXDEV="1", PAW_CRASH_POINT="never")
    command = [sys.executable, os.path.join(ROOT, "tests", "crashrun.py"), "--config", lab.config]
    results = [subprocess.run(command, env=env, capture_output=True, text=True, timeout=60,
                              preexec_fn=limits) for _ in range(2)]
    assert [r.returncode for r in results] == [0, 0], results[0].stderr
    [output] = lab.outbox_files()
    assert leaked(os.path.join(lab.outbox, output), planted) == []
    assert len([x for x in results[0].stderr.splitlines() if "WARNING" in x]) == 1
    assert "a FIFO" in results[0].stderr or "a socket" in results[0].stderr or \
        "a character device" in results[0].stderr
    assert "WARNING" not in results[1].stderr
    assert os.path.lexists(special) and lab.staging() == []
    assert [r["original"] for r in lab.rows()] == ["good.svs"]


def test_names_too_long_for_paws_partial_and_reason_files(lab):
    """255-byte names (the limit): `.paw-partial-NAME` and `NAME.reason.txt` would pass it.
    Moves are copies here (the partial names matter then)."""
    from conftest import ROOT
    good, broken = "g" * 251 + ".svs", "b" * 251 + ".svs"
    planted = aperio.write(os.path.join(lab.inbox, good))
    with open(os.path.join(lab.inbox, broken), "wb") as fh:
        fh.write(b"junk")
    env = dict(os.environ, PAW_FAKE_EXDEV="1", PAW_CRASH_POINT="never")
    result = lab.run_subprocess(env=env, wrapper=os.path.join(ROOT, "tests", "crashrun.py"))
    assert result.returncode == 3, result.stderr
    [output] = lab.outbox_files()
    assert leaked(os.path.join(lab.outbox, output), planted) == []
    assert lab.quarantined() == [broken] and lab.staging() == []
    [reason] = [n for n in os.listdir(lab.quarantine) if n != broken]
    assert reason == "b" * 243 + "~.reason.txt"
    assert lab.run("status") == 0


def test_a_modification_time_in_the_future_waits_by_paws_clock(lab, monkeypatch):
    """An SMB client whose clock runs a day ahead: the slide's mtime lies in the future. paw
    judges its age by its own observation and warns once about the clock."""
    import logging
    from paw import inbox
    lab.write_config(min_age=60, runs=2)
    path = os.path.join(lab.inbox, "x.svs")
    aperio.write(path)
    ahead = time.time() + 86400
    os.utime(path, (ahead, ahead))
    clock = [time.time()]
    monkeypatch.setattr(inbox.time, "time", lambda: clock[0])
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("paw").addHandler(handler)
    try:
        assert lab.run() == 0 and lab.outbox_files() == []
        clock[0] += 30
        assert lab.run() == 0 and lab.outbox_files() == []
        clock[0] += 31  # 61 s after paw first saw it unchanged
        assert lab.run() == 0 and len(lab.outbox_files()) == 1
    finally:
        logging.getLogger("paw").removeHandler(handler)
    skew = [r for r in records if "in the future" in r.getMessage()]
    assert len(skew) == 1 and skew[0].levelname == "WARNING"


# --- around the file ---------------------------------------------------------------------------

def _acl(uid):
    """A POSIX access ACL granting user `uid` rwx (the kernel's xattr layout)."""
    import struct
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 7, uid), (0x04, 4, 0xFFFFFFFF), (0x10, 7, 0xFFFFFFFF),
               (0x20, 4, 0xFFFFFFFF)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


@pytest.mark.parametrize("exdev", [False, True])
def test_extended_attributes_never_reach_the_outbox(lab, monkeypatch, exdev):
    """Samba keeps streams and DOS attributes, macOS its metadata (kMDItemWhereFroms with a
    patient in a URL), POSIX ACLs in extended attributes; a rename carries them along."""
    from synth import mrxs
    path = os.path.join(lab.inbox, "x.svs")
    aperio.write(path)
    mrxs.write(os.path.join(lab.inbox, "m.mrxs"))
    tagged = [path, os.path.join(lab.inbox, "m", "Slidedat.ini"), os.path.join(lab.inbox, "m")]
    for each in tagged:
        os.setxattr(each, "user.com.apple.metadata:kMDItemWhereFroms",
                    b"https://lis.example/case?patient=DOE^JANE")
        os.setxattr(each, "user.DosStream.Zone.Identifier:$DATA", b"[ZoneTransfer]\r\nZoneId=3")
    try:
        os.setxattr(path, "system.posix_acl_access", _acl(4242))
    except OSError:
        pass  # a file system without ACLs
    if exdev:
        from paw import durable, fsops
        real = fsops.rename_noreplace

        def rename(src, dst):
            if os.path.dirname(src) != os.path.dirname(dst) and \
                    not os.path.basename(src).startswith(durable.PARTIAL_PREFIX):
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            return real(src, dst)

        monkeypatch.setattr(fsops, "rename_noreplace", rename)
    assert lab.run() == 0
    assert len(lab.outbox_files()) == 3  # the SVS, and the MRXS file and its folder
    for root, dirs, files in os.walk(lab.outbox):
        for name in dirs + files:
            assert os.listxattr(os.path.join(root, name)) == [], name


def test_a_file_still_open_for_writing_is_not_claimed(lab):
    """The writer keeps the inode open: a delivered file could still change. A read lease is
    refused while anyone on this host has the file open for writing (smbd included)."""
    path = os.path.join(lab.inbox, "x.svs")
    aperio.write(path)
    with open(path, "r+b") as writer:
        result = lab.run_subprocess()
        again = lab.run_subprocess()
        status = lab.run_subprocess("status")
        assert writer.writable()
    assert result.returncode == 0 and lab.outbox_files() == [] and lab.staging() == []
    assert "still open for writing" in result.stderr and "still open for writing" not in again.stderr
    assert "x.svs is still open for writing" in status.stdout
    assert lab.run() == 0 and len(lab.outbox_files()) == 1


def test_cross_file_system_copies_keep_holes(lab):
    """A 500 MB sparse slide through a claim and a delivery that are both copies: the outbox
    file has its holes (its allocated blocks are a small fraction of its size)."""
    from conftest import ROOT
    aperio.write(os.path.join(lab.inbox, "x.svs"), 13000, 13000, sparse=True)
    size = os.path.getsize(os.path.join(lab.inbox, "x.svs"))
    env = dict(os.environ, PAW_FAKE_EXDEV="1", PAW_CRASH_POINT="never")
    result = lab.run_subprocess(env=env, wrapper=os.path.join(ROOT, "tests", "crashrun.py"))
    assert result.returncode == 0, result.stderr
    [output] = lab.outbox_files()
    info = os.stat(os.path.join(lab.outbox, output))
    assert info.st_size == size > 400 << 20
    assert info.st_blocks * 512 < size // 20


def test_a_deleted_lock_file_lets_no_second_run_in(lab):
    """Run A holds the lock in the middle of a slide; someone deletes state/paw.lock (an older
    paw's lock file, or any file there). Run B must still find the lock held and leave A's job
    alone."""
    import json
    import signal
    from conftest import ROOT
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    env = dict(os.environ, PAW_CRASH_POINT="pause-after-claim", PAW_PAUSE="60")
    first = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "crashrun.py"), "--config",
                              lab.config], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while not lab.staging() and time.time() < deadline:
            time.sleep(0.05)
        [job] = lab.staging()
        lock_file = os.path.join(lab.state, "paw.lock")
        if os.path.exists(lock_file):
            os.unlink(lock_file)
        second = lab.run_subprocess()
        assert second.returncode == 0 and "another paw run holds the lock" in second.stderr
        with open(os.path.join(lab.state, "staging", job, "job.json")) as fh:
            assert json.load(fh)["state"] == "claimed"
        assert lab.rows() == []
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert lab.run() == 0 and len(lab.rows()) == 1 and len(lab.outbox_files()) == 1


def test_the_lock_is_taken_on_the_folder_the_path_names(tmp_path, monkeypatch):
    """The state folder replaced between opening it and locking it: the lock must end up on the
    folder the path names now, not on the one that went away."""
    import fcntl
    from paw import job
    state = tmp_path / "state"
    state.mkdir()
    real = fcntl.flock
    calls = []

    def flock(fd, operation):
        calls.append(fd)
        if len(calls) == 1:  # someone swaps the folder just now
            os.rename(state, tmp_path / "state.old")
            os.mkdir(state, 0o700)
        return real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    fd = job.lock_state(str(state))
    try:
        assert len(calls) == 2
        assert (os.fstat(fd).st_dev, os.fstat(fd).st_ino) == (os.stat(state).st_dev, os.stat(state).st_ino)
    finally:
        os.close(fd)


def _tree_digests(path):
    import hashlib
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, n) for root, _, names in os.walk(path) for n in names)
    return {os.path.relpath(f, os.path.dirname(path)): hashlib.sha256(open(f, "rb").read()).hexdigest()
            for f in files}


def _refuse_writes_in_staging(monkeypatch, lab, after=None):
    """os.open refuses (EACCES) to open a staged slide file for writing, as for a scan of
    another user; with `after` (a list) only once it is non-empty."""
    real = os.open

    def refusing(path, flags, *args, **kwargs):
        staged = os.sep + "staging" + os.sep in str(path) and os.sep + "slide" + os.sep in str(path)
        if staged and flags & (os.O_WRONLY | os.O_RDWR) and (after is None or after):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)


@pytest.mark.parametrize("kind", ["svs", "mrxs"])  # DICOM writes no existing file: new
def test_a_staged_file_that_cannot_be_written_is_quarantined_unchanged(lab, monkeypatch, kind):
    """The pre-claim check passed, then the edit's write is refused (EACCES: an ACL, a chmod in
    between): the slide is quarantined byte for byte as the scanner wrote it, with the owner,
    mode and fix as its reason; nothing stays in staging, the next run is clean."""
    from synth import mrxs
    if kind == "svs":
        aperio.write(os.path.join(lab.inbox, "S26-1 A1 HE.svs"))
    else:
        mrxs.write(os.path.join(lab.inbox, "S26-1 A1 HE.mrxs"))
    before = {n: _tree_digests(os.path.join(lab.inbox, n)) for n in os.listdir(lab.inbox)}
    main = sorted(before)[-1] if kind == "svs" else "S26-1 A1 HE.mrxs"
    inode = os.stat(os.path.join(lab.inbox, main)).st_ino
    _refuse_writes_in_staging(monkeypatch, lab)
    assert lab.run() == 3
    assert lab.staging() == [] and lab.outbox_files() == []
    assert {n: _tree_digests(os.path.join(lab.quarantine, n)) for n in before} == before
    # Nothing was written, so nothing was restored: the scanner's own file, only renamed.
    assert os.stat(os.path.join(lab.quarantine, main)).st_ino == inode
    [row] = lab.rows()
    assert row["status"] == "quarantined"
    assert row["error"].startswith("paw's user root (uid 0) cannot write a file of the slide (owner root, mode 0")
    assert "run paw as the shares' owner, or let Samba create files group-writable" in row["error"]
    assert lab.run() == 0


def test_a_write_refused_after_part_of_the_edit_still_rolls_back(lab, monkeypatch):
    """The edit was written, then verification fails and the file can no longer be opened for
    writing: the rollback restores a copy and renames it over the file (a rename needs no right
    on the file), so the quarantined slide is still the scanner's, byte for byte."""
    from paw import slide
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    before = _tree_digests(os.path.join(lab.inbox, "x.svs"))
    refused = []
    _refuse_writes_in_staging(monkeypatch, lab, after=refused)

    def failing_verify(*args, **kwargs):
        refused.append(True)
        raise PermissionError(errno.EACCES, "Permission denied", args[0])

    monkeypatch.setattr(slide, "verify", failing_verify)
    assert lab.run() == 3
    assert _tree_digests(os.path.join(lab.quarantine, "x.svs")) == before
    assert lab.staging() == [] and lab.rows()[0]["status"] == "quarantined"


@pytest.fixture
def read_only_folder(tmp_path):
    """A tmpfs mounted read-only (as systemd's ProtectSystem=strict shows every path outside
    ReadWritePaths), or a skip where this process may not mount."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs",
                                            str(folder)], capture_output=True).returncode:
        pytest.skip("needs root and mount to make a read-only file system")
    yield str(folder)
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("key", ["state_dir", "ledger"])
def test_a_read_only_file_system_is_named_as_such(lab, read_only_folder, key):
    """Root gets it too, so no permission is the fix: the message says read-only file system
    and points at systemd's ReadWritePaths; nothing is claimed."""
    aperio.write(os.path.join(lab.inbox, "x.svs"))
    line = f"state_dir: {read_only_folder}/state\n" if key == "state_dir" else \
        f"ledger: {{csv: {read_only_folder}/ledger.csv}}\n"
    lab.write_config(extra=line)
    result = lab.run_subprocess()
    assert result.returncode == 2, result.stderr
    assert f"{read_only_folder} is on a read-only file system (systemd ReadWritePaths?)" in result.stderr
    assert "permission" not in result.stderr
    assert os.listdir(lab.inbox) == ["x.svs"]
    status = lab.run_subprocess("status")
    assert "not ready: " in status.stdout and "read-only file system" in status.stdout


def test_a_tick_whose_only_stable_slide_is_left_in_the_inbox_imports_no_parsing_code(lab):
    """A slide paw's user cannot take sits in the inbox, stable, at every tick: checking it
    must cost what an idle tick costs (no numpy, no tifffile, no paw.slide)."""
    from conftest import ROOT
    locked = os.path.join(lab.inbox, "locked")
    os.mkdir(locked)
    aperio.write(os.path.join(locked, "x.svs"))
    os.chmod(locked, 0o555)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from paw.cli import main; "
            "rc = main(['--config', sys.argv[2], '-q']); "
            "print(rc, sorted(m for m in ('numpy', 'tifffile', 'paw.slide') if m in sys.modules))")
    run_without_override(lab, "status")  # skips where the override cannot be dropped
    try:
        results = [subprocess.run(NO_DAC + [sys.executable, "-c", code, os.path.join(ROOT, "lib"), lab.config],
                                  capture_output=True, text=True, timeout=120) for _ in range(2)]
    finally:
        os.chmod(locked, 0o755)
    assert [r.stdout.strip() for r in results] == ["0 []", "0 []"], [r.stderr for r in results]
    assert "left in the inbox" in results[0].stderr
