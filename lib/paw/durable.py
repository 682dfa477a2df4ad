"""Durable writes both halves of paw need: the pipeline (journal, ledger, moves) and the formats
(a rewritten DICOM instance, a new Slidedat.ini).

A file is durable when its bytes are fsynced *and* the directory entry naming it is: a power cut
after `rename` but before the folder's fsync can lose the new name. Partial files carry one
prefix so that whoever finds one after a crash knows it is paw's and unfinished.
"""

import os

PARTIAL_PREFIX = ".paw-partial-"


def partial_path(path):
    """Where a file is built before it is renamed to `path`."""
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
    """Replace `path` with `data` (bytes) so a crash leaves either the old or the new content."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    commit(tmp, path)
