"""Durable writes both halves of paw need: the pipeline (journal, ledger, moves) and the formats
(a rewritten DICOM instance, a new Slidedat.ini, an undo log).

A file is durable when its bytes are fsynced *and* the directory entry naming it is: a power cut
after `rename` but before the folder's fsync can lose the new name. The same holds for a new
folder: its name is durable only once its parent is fsynced. Partial files carry one prefix so
that whoever finds one after a crash knows it is paw's and unfinished.
"""

import errno
import os
import secrets

PARTIAL_PREFIX = ".paw-partial-"


def partial_path(path):
    """Where a file is built before it is renamed to `path`. Only for folders paw owns (or a
    file the admin hands to `paw.py anonymize --in-place`): the name may exist and is replaced."""
    folder, name = os.path.split(path)
    return os.path.join(folder, PARTIAL_PREFIX + name)


def fsync_dir(path):
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(partial, path):
    """Rename a finished, fsynced partial file over `path` and make the new name durable."""
    os.replace(partial, path)
    fsync_dir(os.path.dirname(path))


def write_atomic(path, data, mode=0o600):
    """Replace `path` with `data` (bytes) so a crash leaves either the old or the new content.
    Only in folders paw owns: `path` and `path.tmp` are replaced whatever they were."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    commit(tmp, path)


def create_new(path, data, mode=0o640, tmp=None):
    """Write `data` to `path`, which must not exist (FileExistsError otherwise), so that the name
    appears complete or not at all and never replaces anything: the bytes go to a new hidden
    file `tmp` in the same folder (default: a fresh random name; callers that may be killed
    pass one they can recognise and remove), which is then hard-linked to `path` (link() never
    overwrites). For shared folders: paw replaces nothing it did not create."""
    folder = os.path.dirname(path) or "."
    tmp = tmp or os.path.join(folder, f"{PARTIAL_PREFIX}{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            _write_exclusive(path, data, mode)  # a file system without hard links
    finally:
        os.unlink(tmp)
    fsync_dir(folder)


def _write_exclusive(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(path):
    """Create `path` and any missing parent as 0700 folders, each made durable in its parent
    (a job folder that vanished in a power cut would orphan the slide moved into it). An
    existing folder is left as it is."""
    path = os.path.abspath(path)
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
            continue
        os.chmod(folder, 0o700)  # mkdir's mode passes through the umask; ours must not
        fsync_dir(os.path.dirname(folder))
