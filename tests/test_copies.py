"""Copies at copy speed: where the file system offers it (btrfs, as Synology's shared folders are;
XFS) a copy shares the source's extents (FICLONE), elsewhere copy_file_range skips holes. The
btrfs tests mount a small btrfs image (root, btrfs-progs and a loop device; skipped otherwise)
with inbox, outbox and state as separate subvolumes, as on a Synology NAS."""

import errno
import os
import shutil
import subprocess

import pytest

from checks import leaked
from synth import aperio

from paw import fsops


def shared_extents(path):
    """Whether filefrag sees extents of `path` shared with another file."""
    result = subprocess.run(["filefrag", "-v", path], capture_output=True, text=True)
    return "shared" in result.stdout


@pytest.fixture
def btrfs(tmp_path):
    if os.geteuid() != 0 or not shutil.which("mkfs.btrfs") or not shutil.which("filefrag"):
        pytest.skip("needs root, btrfs-progs and filefrag (.ci/run installs them) to mount a btrfs image")
    image, mount = tmp_path / "btrfs.img", tmp_path / "mnt"
    mount.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(300 << 20)
    made = subprocess.run(["mkfs.btrfs", "-q", "-f", str(image)], capture_output=True)
    mounted = made.returncode == 0 and subprocess.run(["mount", "-o", "loop", str(image), str(mount)],
                                                      capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a btrfs image here (no loop device or no permission)")
    try:
        yield str(mount)
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def subvolume(mount, name):
    path = os.path.join(mount, name)
    subprocess.run(["btrfs", "subvolume", "create", path], check=True, capture_output=True)
    return path


def test_a_copy_on_btrfs_shares_extents_and_a_move_between_subvolumes_is_a_reflink(btrfs):
    a, b = subvolume(btrfs, "a"), subvolume(btrfs, "b")
    source = os.path.join(a, "slide.svs")
    with open(source, "wb") as fh:
        fh.write(os.urandom(4 << 20))
    with pytest.raises(OSError) as caught:
        os.rename(source, os.path.join(b, "x"))
    assert caught.value.errno == errno.EXDEV  # separate subvolumes: rename cannot
    copy = fsops.copy_file(source, os.path.join(b, "copy.svs"))
    assert shared_extents(copy) and open(copy, "rb").read() == open(source, "rb").read()
    fsops.move(source, os.path.join(b, "moved.svs"))
    assert not os.path.exists(source) and shared_extents(os.path.join(b, "moved.svs"))


def test_the_job_across_synology_like_subvolumes(btrfs, lab):
    inbox, outbox, quarantine = (subvolume(btrfs, n) for n in ("inbox", "outbox", "quarantine"))
    state = os.path.join(subvolume(btrfs, "paw"), "state")
    lab.write_config(extra=f"inbox: {inbox}\noutbox: {outbox}\nquarantine: {quarantine}\nstate_dir: {state}\n")
    planted = aperio.write(os.path.join(inbox, "S26-1 A1 HE.svs"))
    assert lab.run() == 0
    [name] = os.listdir(outbox)
    assert leaked(os.path.join(outbox, name), planted) == [] and os.listdir(inbox) == []


def test_without_reflink_the_copy_falls_back_and_keeps_holes(tmp_path, monkeypatch):
    """ext4 and tmpfs answer FICLONE with EOPNOTSUPP/EXDEV/ENOTTY: copy_file_range, holes kept."""
    source = str(tmp_path / "sparse.bin")
    with open(source, "wb") as fh:
        fh.write(b"head")
        fh.seek(64 << 20)
        fh.write(b"tail")
    calls = []
    real = fsops.reflink

    def refused(src, dst):
        calls.append(1)
        import fcntl

        def no(*args):
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        monkeypatch.setattr(fcntl, "ioctl", no)
        try:
            return real(src, dst)
        finally:
            monkeypatch.undo()

    monkeypatch.setattr(fsops, "reflink", refused)
    copy = fsops.copy_file(source, str(tmp_path / "copy.bin"))
    assert calls == [1]
    with open(copy, "rb") as fh:
        data = fh.read()
    assert data[:4] == b"head" and data[-4:] == b"tail" and len(data) == (64 << 20) + 4
    assert os.stat(copy).st_blocks * 512 < 1 << 20  # the hole stayed a hole


def test_a_real_error_of_the_clone_is_not_taken_for_no_reflink(tmp_path, monkeypatch):
    import fcntl
    source = tmp_path / "a.bin"
    source.write_bytes(b"x" * 100)

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fcntl, "ioctl", full)
    with pytest.raises(OSError) as caught:
        fsops.copy_file(str(source), str(tmp_path / "b.bin"))
    assert caught.value.errno == errno.ENOSPC
