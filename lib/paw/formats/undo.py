"""The undo log: what it takes to give a slide back exactly as the scanner wrote it.

A slide whose edit was applied and that then fails (verification, the time limit, a crash
replayed into a failure) is quarantined, and a quarantined slide must be byte for byte the
scanner's file. So before a plan writes its first byte it saves, in a private folder the
pipeline gives it (`state_dir/staging/<job>/undo/`), the original bytes of every range it will
overwrite and the file's size (a drawn label is appended after the end: rollback truncates).
Of the ranges a plan zeroes only the non-zero data is kept (holes and zeros come back as zeros
anyway). The log is committed by its index, written atomically after the data is fsynced: no
index means no byte of the slide was written yet, and a replayed apply never saves again (the
file may by then be half edited).

Bounded: metadata, directories and the label/macro strips are a few MB (0.5 MB for OpenSlide's
CMU-1 region, 0.3 MB for the Hamamatsu sample). A plan that would need more than LIMIT is
refused before anything is written (the slide is quarantined unchanged): the margin is for
embedded preview images (a Zeiss SlidePreview, a VSI overview stack) of tens of MB.
"""

import json
import os
import shutil

from ..durable import fsync_dir, write_atomic
from ..errors import Unsupported
from ..sparse import nonzero_blocks

LIMIT = 256 << 20
INDEX = "ranges.json"
DATA = "ranges.bin"
RESTORED = "restored.partial"  # a copy being restored, for a file paw may not write


def too_big(needed):
    return Unsupported(f"the edit would overwrite more than {LIMIT >> 20} MiB of the slide "
                       f"({needed >> 20} MiB or more), the most paw keeps to give a quarantined "
                       "slide back unchanged")


class RangeLog:
    """The original bytes of the ranges one file's edit overwrites, in `folder`."""

    def __init__(self, folder):
        self.folder = folder
        self.index = os.path.join(folder, INDEX)
        self.data = os.path.join(folder, DATA)

    def committed(self):
        return os.path.exists(self.index)

    def saved(self):
        """Bytes this log holds (0 when not committed)."""
        if not self.committed():
            return 0
        with open(self.index, encoding="utf-8") as fh:
            return sum(length for _, length, _ in json.load(fh)["entries"])

    def save(self, path, whole, nonzero, budget):
        """Save the bytes of `whole` ranges and the non-zero data of `nonzero` ranges
        ((offset, length) pairs) of `path`, durably, unless already committed. Returns the bytes
        the log holds; raises Unsupported (writing nothing) past `budget`."""
        if self.committed():
            return self.saved()
        os.makedirs(self.folder, 0o700, exist_ok=True)
        entries, total = [], 0
        source = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            size = os.fstat(source).st_size
            out = os.open(self.data, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                def keep(offset, block):
                    nonlocal total
                    total += len(block)
                    if total > budget:
                        raise too_big(total)
                    entries.append((offset, len(block), os.lseek(out, 0, os.SEEK_CUR)))
                    os.write(out, block)

                for offset, length in whole:
                    end = min(offset + length, size)
                    if end > offset:
                        keep(offset, os.pread(source, end - offset, offset))
                for offset, length in nonzero:
                    for position, block in nonzero_blocks(source, offset, length):
                        keep(position, block)
                os.fsync(out)
            finally:
                os.close(out)
        except BaseException:
            os.unlink(self.data)
            raise
        finally:
            os.close(source)
        write_atomic(self.index, json.dumps({"size": size, "entries": entries}).encode("ascii"))
        fsync_dir(os.path.dirname(self.folder))
        return total

    def restore(self, path):
        """Write the saved bytes back and cut the file to its old size; nothing when the log
        was never committed or the file already holds the saved bytes (nothing was written:
        the edit failed before its first byte, or a restore finished). Idempotent.

        A file paw's user may not open for writing (a permission that changed, an ACL) is
        restored into a copy made in the undo folder that then takes the file's place: a
        rename needs no right on the file itself, so a quarantined slide still comes back as
        the scanner wrote it rather than waiting in staging."""
        if not self.committed():
            return
        with open(self.index, encoding="utf-8") as fh:
            index = json.load(fh)
        if self._holds_originals(path, index):
            return
        try:
            target = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except PermissionError:
            self._restore_into_copy(path, index)
            return
        try:
            self._write_back(target, index)
        finally:
            os.close(target)

    def _holds_originals(self, path, index):
        """Whether `path` already has the original size and the saved bytes (read only)."""
        source = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            if os.fstat(source).st_size != index["size"]:
                return False
            with open(self.data, "rb") as saved:
                for offset, length, at in index["entries"]:
                    saved.seek(at)
                    if os.pread(source, length, offset) != saved.read(length):
                        return False
            return True
        finally:
            os.close(source)

    def _write_back(self, target, index):
        with open(self.data, "rb") as saved:
            for offset, length, at in index["entries"]:
                saved.seek(at)
                os.pwrite(target, saved.read(length), offset)
        os.ftruncate(target, index["size"])
        os.fsync(target)

    def _restore_into_copy(self, path, index):
        copy = os.path.join(self.folder, RESTORED)
        shutil.copyfile(path, copy, follow_symlinks=False)
        target = os.open(copy, os.O_RDWR | os.O_NOFOLLOW)
        try:
            self._write_back(target, index)
        finally:
            os.close(target)
        shutil.copystat(path, copy, follow_symlinks=False)  # the scanner's mode and times
        os.replace(copy, path)
        fsync_dir(os.path.dirname(path))
