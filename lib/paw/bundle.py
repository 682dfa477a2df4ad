"""Which files make one slide, decided by content, in one place.

Used by the inbox scan, by hand (`inspect`, `anonymize`), by naming and delivery, and by the
formats that read several files. A slide is one of:

  file    a single file (TIFF family, iSyntax, a DICOM instance lying directly in the inbox, ...)
  mrxs    `X.mrxs` plus the folder `X/` beside it (OpenSlide's MIRAX rule: the .mrxs names the
          folder holding Slidedat.ini, Index.dat and the data files)
  dicom   a folder (below the inbox) that directly holds a DICOM Part 10 file (`DICM` at byte
          128), whatever the names or extensions: everything in it, sub-folders included, is
          that one slide. PACS and scanner exports name instances without extension, add a
          DICOMDIR and put instances in sub-folders (`PT000000/ST000000/SE000000/IM000000`);
          all of it is one slide, never one slide per instance.
  vsi     `X.vsi` plus the folder `_X_/` beside it (Olympus cellSens: the pixels are in
          `_X_/stackN/frame_t*.ets`; Bio-Formats and bioio-vsi find them by this name)

Every file inside a bundle is accounted for (`contents`): a member the format needs, known
clutter that operating systems and NAS boxes write beside files (removed from the delivered
slide, and reported), or a stray the slide is refused for. Nothing travels unexamined.

Kept free of parsing code: the idle tick walks the inbox with it.
"""

import fnmatch
import os
import stat
from dataclasses import dataclass, field
from typing import NamedTuple

DICOM_MAGIC_AT, DICOM_MAGIC = 128, b"DICM"
MRXS_SUFFIX = ".mrxs"
VSI_SUFFIX = ".vsi"
FILE, MRXS, DICOM, VSI = "file", "mrxs", "dicom", "vsi"
CLUTTER_MAX_SIZE = 1 << 20  # clutter without a magic number is small; a larger file is a stray

# Files operating systems and NAS software put beside the files a user copies: (name pattern,
# magic bytes at offset 0 or None, what it is). Removing them loses nothing of the slide; they
# must not travel (AppleDouble and .DS_Store carry the original file names and extended
# attributes such as download URLs, Thumbs.db carries thumbnails of the pictures).
CLUTTER_FILES = (
    ("._*", b"\x00\x05\x16\x07", "macOS AppleDouble metadata file (._*)"),
    (".DS_Store", b"\x00\x00\x00\x01Bud1", "macOS folder settings (.DS_Store)"),
    ("Thumbs.db", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "Windows thumbnail cache (Thumbs.db)"),
    ("desktop.ini", None, "Windows folder settings (desktop.ini)"),
    ("*@SynoEAStream", None, "Synology extended-attribute stream"),
    ("*@SynoResource", None, "Synology resource fork"),
)
# Folders of the same kind, removed whole.
CLUTTER_FOLDERS = (
    ("@eaDir", "Synology thumbnail and attribute folder (@eaDir)"),
    ("__MACOSX", "macOS archive metadata folder (__MACOSX)"),
    (".AppleDouble", "netatalk metadata folder (.AppleDouble)"),
)


class Bundle(NamedTuple):
    """A tuple, not a dataclass: the inbox scan makes one per file (100,000 of them per tick)."""
    kind: str
    members: tuple   # paths; the main member first (the .mrxs file, the DICOM folder, the file)

    @property
    def main(self):
        return self.members[0]


@dataclass
class Contents:
    """Every entry below a slide folder, by what it is (paths relative to the folder, `/`-joined)."""
    members: list = field(default_factory=list)   # files the format reads
    clutter: list = field(default_factory=list)   # (path, what it is): removed from the slide
    strays: list = field(default_factory=list)    # files nothing explains: the slide is refused
    folders: list = field(default_factory=list)   # sub-folders (not clutter), deepest first


def _magic(path, at, size):
    """`size` bytes at `at` of a regular file (b"" if shorter or unreadable). Never opens a
    FIFO or device (a hostile inbox entry must not block the scan)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.pread(fd, size, at)
    except OSError:
        return b""
    finally:
        os.close(fd)


def is_dicom(path):
    """A DICOM Part 10 file: 128-byte preamble, then `DICM` (OpenSlide and libdicom use the same
    test; names and extensions do not matter)."""
    return _magic(path, DICOM_MAGIC_AT, len(DICOM_MAGIC)) == DICOM_MAGIC


def clutter_kind(entry):
    """What a directory entry is if it is known clutter, else None."""
    if entry.is_symlink():
        return None
    if entry.is_dir(follow_symlinks=False):
        return next((what for name, what in CLUTTER_FOLDERS if entry.name == name), None)
    if not entry.is_file(follow_symlinks=False):
        return None
    for pattern, magic, what in CLUTTER_FILES:
        if fnmatch.fnmatchcase(entry.name, pattern):
            if magic is not None:
                return what if _magic(entry.path, 0, len(magic)) == magic else None
            return what if entry.stat(follow_symlinks=False).st_size <= CLUTTER_MAX_SIZE else None
    return None


def contents(folder, wanted, recurse):
    """Classify everything below `folder`: a regular file `wanted(path)` accepts is a member,
    known clutter is listed for removal, anything else (other files, links, devices, and
    sub-folders unless `recurse`) is a stray."""
    found = Contents()

    def walk(directory, prefix):
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            rel = prefix + entry.name
            what = clutter_kind(entry)
            if what is not None:
                found.clutter.append((rel, what))
            elif entry.is_dir(follow_symlinks=False) and recurse:
                walk(entry.path, rel + "/")
                found.folders.append(rel)
            elif entry.is_file(follow_symlinks=False) and wanted(entry.path):
                found.members.append(rel)
            else:
                found.strays.append(rel)

    walk(folder, "")
    return found


def dicom_contents(folder):
    """A DICOM slide folder: every DICOM Part 10 file below it is a member (the format sorts
    out instances, DICOMDIR and other objects), sub-folders are walked (exports nest them)."""
    return contents(folder, is_dicom, recurse=True)


def is_dicom_folder(folder):
    """A folder that directly holds a DICOM Part 10 file is one DICOM slide."""
    try:
        return any(e.is_file(follow_symlinks=False) and is_dicom(e.path) for e in os.scandir(folder))
    except OSError:
        return False


def mrxs_folder(path):
    """The data folder of an MRXS slide file (`X/` for `X.mrxs`), or None."""
    if not path.lower().endswith(MRXS_SUFFIX):
        return None
    folder = path[:-len(MRXS_SUFFIX)]
    return folder if os.path.isdir(folder) and not os.path.islink(folder) else None


def vsi_folder_name(name):
    """The pixel folder's name of an Olympus VSI file (`_X_` for `X.vsi`), or None."""
    if not name.lower().endswith(VSI_SUFFIX) or len(name) == len(VSI_SUFFIX):
        return None
    return f"_{name[:-len(VSI_SUFFIX)]}_"


def vsi_folder(path):
    """The pixel folder of an Olympus VSI slide file (`_X_/` beside `X.vsi`), or None."""
    name = vsi_folder_name(os.path.basename(path))
    if name is None:
        return None
    folder = os.path.join(os.path.dirname(path), name)
    return folder if os.path.isdir(folder) and not os.path.islink(folder) else None


def at(path):
    """The slide a path given by hand belongs to (the path is its main member)."""
    if os.path.isdir(path) and not os.path.islink(path):
        return Bundle(DICOM, (path,))
    folder = mrxs_folder(path)
    if folder is not None:
        return Bundle(MRXS, (path, folder))
    folder = vsi_folder(path)
    if folder is not None:
        return Bundle(VSI, (path, folder))
    return Bundle(FILE, (path,))


def in_folder(root, files, dirs):
    """The slides directly in one inbox folder: (an iterator of bundles with paths relative to
    `root`'s listing, sub-folders to walk further). `files` and `dirs` are the folder's names
    already stripped of ignored ones; MRXS data folders and DICOM folders are slides, not
    walked. `root` itself is never a DICOM slide: files lying directly in a folder being walked
    are slides of their own (a DICOM instance there is a single-file slide). The bundles are
    made as they are taken: a folder of 100,000 files never holds 100,000 of them at once."""
    stems = set()  # the data folders the files name: X/ for X.mrxs, _X_/ for X.vsi (one pass)
    for name in files:
        tail = name[-len(MRXS_SUFFIX):].lower()
        if tail == MRXS_SUFFIX:
            stems.add(name[:-len(MRXS_SUFFIX)])
        elif tail.endswith(VSI_SUFFIX):
            stems.add(vsi_folder_name(name))
    stems.discard(None)
    folders, walk = [], []
    for name in dirs:
        if name in stems:
            continue
        if is_dicom_folder(os.path.join(root, name)):
            folders.append(Bundle(DICOM, (name,)))
        else:
            walk.append(name)
    data_folders = stems.intersection(dirs)

    def bundles():
        make = tuple.__new__  # a Bundle without the Python-level __new__: 100,000 per idle tick
        yield from folders
        for name in files:
            if data_folders:  # the pairs: X.mrxs with X/, X.vsi with _X_/
                if name[:-len(MRXS_SUFFIX)] in data_folders and name.lower().endswith(MRXS_SUFFIX):
                    yield Bundle(MRXS, (name, name[:-len(MRXS_SUFFIX)]))
                    continue
                pixels = vsi_folder_name(name)
                if pixels in data_folders:
                    yield Bundle(VSI, (name, pixels))
                    continue
            yield make(Bundle, (FILE, (name,)))

    return bundles(), walk


def member_names(kind, stem, extension):
    """The delivered names of a slide's members, from its output stem: `P.svs`; `P.mrxs` and
    its folder `P`; `P.vsi` and its folder `_P_`; a DICOM folder `P` (the files inside are named
    by the DICOM plan)."""
    if kind == MRXS:
        return [stem + extension.lower(), stem]
    if kind == VSI:
        return [stem + extension.lower(), f"_{stem}_"]
    if kind == DICOM:
        return [stem]
    return [stem + extension.lower()]
