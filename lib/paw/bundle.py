"""Which files make one slide, decided by content, in one place.

Used by the inbox scan, by hand (`inspect`, `anonymize`), by naming and delivery, and by the
formats that read several files. A slide is one of:

  file    a single file (TIFF family, iSyntax, a DICOM instance lying directly in the inbox, ...)
  mrxs    `X.mrxs` plus the folder `X/` beside it (OpenSlide's MIRAX rule: the .mrxs names the
          folder holding Slidedat.ini, Index.dat and the data files), whatever the folder's
          name looks like (an ignore pattern applies to names being walked, not to a data
          folder its .mrxs names)
  dicom   a folder (below the inbox) holding one DICOM series: DICOM Part 10 files (`DICM` at
          byte 128), whatever their names or extensions, directly in it, or a DICOMDIR directly
          in it with exactly one folder of instances below (PACS and scanner exports name
          instances without extension, add a DICOMDIR and put instances in sub-folders
          `PT000000/ST000000/SE000000/IM000000`); everything under it is that one slide
  vsi     `X.vsi` plus the folder `_X_/` beside it (Olympus cellSens: the pixels are in
          `_X_/stackN/frame_t*.ets`; Bio-Formats and bioio-vsi find them by this name)

and two kinds of unit paw takes from the inbox only to refuse them, with a reason a technician
can act on (`refusal`), so that they neither wait forever nor take their neighbours down:

  loose-dicom  a DICOM file lying in a project folder beside other slides (other slide files,
               or several folders of instances below): DICOM instances must be in a folder of
               their own, one folder per slide. A DICOMDIR there is the index of an export of
               several series; it names the patient and is never delivered.
  folder       a folder that is a piece of a slide: an MRXS data folder (it holds Slidedat.ini)
               without its .mrxs file, an Olympus pixel folder `_X_/` without its .vsi. It is
               one unit, refused as a whole, never file by file.

A folder that directly holds DICOM files *and* other slides (a .svs, an MRXS pair), or below
which several folders hold instances, is therefore a project folder: its other slides go their
normal way. Files lying directly in the inbox itself are never read by the scan (the idle tick
pays one lstat per file): a DICOM file there is a single-file slide, which the DICOM format
delivers only if it is a whole slide by itself.

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
DICOMDIR = "DICOMDIR"          # PS3.10 8.6: the file-set's directory file has this name
MRXS_SUFFIX = ".mrxs"
VSI_SUFFIX = ".vsi"
SLIDEDAT = "slidedat.ini"      # what makes a folder an MRXS data folder (OpenSlide's test)
FILE, MRXS, DICOM, VSI = "file", "mrxs", "dicom", "vsi"
LOOSE_DICOM, FOLDER = "loose-dicom", "folder"
HEAD = 512                     # bytes read of a file to tell what it is (DICM at 128, iSyntax XML)
# The first bytes of a file that is a slide of another format (a neighbour, not a stray): TIFF
# (classic and BigTIFF, both byte orders: SVS, NDPI, SCN, BIF, Philips, VSI, generic), Zeiss CZI.
OTHER_SLIDE_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+", b"ZISRAWFILE")
OTHER_SLIDE_SUFFIXES = (MRXS_SUFFIX, VSI_SUFFIX)
ISYNTAX_MARKS = (b"<DataObject", b"DPUfsImport")
LOOSE_REASON = ("DICOM instances must be in a folder of their own: one folder per slide "
                "(this file lies in a project folder beside other slides)")
DICOMDIR_REASON = ("a DICOMDIR (the index of a DICOM export; it names the patient) is never "
                   "delivered: each series folder beside it is a slide of its own")
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


def _is_dicom_head(head):
    return head[DICOM_MAGIC_AT:DICOM_MAGIC_AT + len(DICOM_MAGIC)] == DICOM_MAGIC


def _is_other_slide(name, head):
    """A file paw would take as a slide of another format than DICOM (by its first bytes, or
    the name OpenSlide itself goes by for MRXS)."""
    if name.lower().endswith(OTHER_SLIDE_SUFFIXES):
        return not _is_dicom_head(head)
    return head.startswith(OTHER_SLIDE_MAGIC) or all(mark in head for mark in ISYNTAX_MARKS)


def _clutter_folder(name):
    return any(name == clutter for clutter, _ in CLUTTER_FOLDERS)


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


class Layout(NamedTuple):
    """What a folder holds, as far as telling slides apart needs (never parsed: first bytes of
    each file only). `instance_folders` counts the folders at or below it that directly hold a
    DICOM file other than a DICOMDIR, stopping at 2."""
    direct_dicom: bool       # a DICOM file (instance or DICOMDIR) directly in the folder
    instance_folders: int    # 0, 1 or 2 (= two or more)
    other_slide: bool        # a slide of another format at or below it
    mrxs_data: bool          # Slidedat.ini directly in it: an MRXS data folder
    vsi_pixels: bool         # named `_X_` with a `stackN` folder: an Olympus VSI pixel folder


def layout(folder, deep=False):
    """The Layout of `folder`. Reads the first bytes of the files directly in it; the folders
    below are walked when it directly holds a DICOM file (exports nest their series) or with
    `deep`, and the walk stops as soon as the answer cannot change."""
    direct = instances = other = mrxs_data = vsi_pixels = False
    below = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return Layout(False, 0, False, False, False)
    for entry in entries:  # a project folder may hold 100,000 files: one read each, no more
        if entry.is_dir(follow_symlinks=False):
            if not _clutter_folder(entry.name):
                below.append(entry.path)
                vsi_pixels |= entry.name.startswith("stack") and entry.name[5:].isdigit()
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        mrxs_data |= entry.name.lower() == SLIDEDAT
        head = _magic(entry.path, 0, HEAD)
        if _is_dicom_head(head):
            direct = True
            instances |= entry.name.upper() != DICOMDIR
        elif _is_other_slide(entry.name, head) and clutter_kind(entry) is None:
            other = True
    name = os.path.basename(os.path.normpath(folder))
    vsi_pixels &= len(name) > 2 and name.startswith("_") and name.endswith("_")
    count = int(instances)
    if (direct or deep) and not other:
        count, other = _instance_folders(below, count)
    return Layout(direct, count, other, mrxs_data, vsi_pixels)


def _instance_folders(folders, count):
    """(folders holding DICOM instances, capped at 2; whether another slide lies below)."""
    stack = list(reversed(folders))
    while stack and count < 2:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        holds = False
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if not _clutter_folder(entry.name):
                    stack.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                head = _magic(entry.path, 0, HEAD)
                if _is_dicom_head(head):
                    holds |= entry.name.upper() != DICOMDIR
                elif _is_other_slide(entry.name, head) and clutter_kind(entry) is None:
                    return count, True
        count += holds
    return min(count, 2), False


def unit_kind(found):
    """What the inbox scan makes of a sub-folder with the Layout `found`: FOLDER (a piece of a
    slide, refused whole), DICOM (one series: a DICOM file directly in it, exactly one folder at
    or below it holding instances, no slide of another format), or None: a project folder to
    walk (its DICOM files lying loose are refused one by one)."""
    if found.mrxs_data or found.vsi_pixels:
        return FOLDER
    if found.direct_dicom and found.instance_folders == 1 and not found.other_slide:
        return DICOM
    return None


def is_dicom_folder(folder):
    """Whether a folder is one DICOM slide, as DICOM's `detect` and a folder given by hand see
    it: exactly one folder at or below it holds DICOM instances, and nothing in it is a slide
    of another format (the inbox rule, `unit_kind`, also wants a DICOM file directly in it:
    there a folder must not become a slide because its only sub-folder is one)."""
    found = layout(folder, deep=True)
    return found.instance_folders == 1 and not found.other_slide and not found.mrxs_data


def folder_refusal(folder):
    """Why a folder is not a slide paw can take as a whole (one line for the technician)."""
    found = layout(folder, deep=True)
    if found.mrxs_data:
        return "MRXS data folder without its .mrxs file: put NAME.mrxs beside the folder NAME"
    if found.vsi_pixels:
        return "Olympus VSI pixel folder without its .vsi file: put NAME.vsi beside the folder _NAME_"
    if found.other_slide and found.instance_folders:
        return "the folder holds DICOM files beside slides of other formats: one folder per slide"
    if found.instance_folders > 1:
        return "the folder holds several folders of DICOM instances: each series is a slide, give one"
    if found.direct_dicom:
        return "the folder holds a DICOMDIR but no DICOM instances"
    return ("not a slide: the folder holds no DICOM Part 10 file (a 128-byte preamble, then DICM) "
            "and no other slide")


def refusal(kind, path):
    """The reason a unit of a kind paw takes only to refuse is refused; None for slides."""
    if kind == LOOSE_DICOM:
        return DICOMDIR_REASON if os.path.basename(path).upper() == DICOMDIR else LOOSE_REASON
    if kind == FOLDER:
        return folder_refusal(path)
    return None


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
    """The slide a path given by hand belongs to (the path is its main member). A folder is
    a DICOM slide when it holds one series (`is_dicom_folder`), else a folder paw refuses."""
    if os.path.isdir(path) and not os.path.islink(path):
        return Bundle(DICOM if is_dicom_folder(path) else FOLDER, (path,))
    folder = mrxs_folder(path)
    if folder is not None:
        return Bundle(MRXS, (path, folder))
    folder = vsi_folder(path)
    if folder is not None:
        return Bundle(VSI, (path, folder))
    return Bundle(FILE, (path,))


class Walk(NamedTuple):
    """A sub-folder the inbox scan walks; `loose`: the DICOM files directly in it lie loose
    (it is a project folder that also holds DICOM files)."""
    name: str
    loose: bool = False


def in_folder(root, files, dirs, loose=False):
    """The slides directly in one inbox folder: (an iterator of bundles with paths relative to
    `root`'s listing, the sub-folders to walk further as Walk entries). `files` and `dirs` are
    the folder's names already stripped of ignored ones; MRXS data folders, DICOM slide folders
    and the folders paw refuses whole are units, not walked. `root` itself is never a DICOM
    slide: files lying directly in a folder being walked are slides of their own, except in a
    folder walked `loose` (a project folder holding DICOM files beside other slides), whose
    DICOM files are refused one by one. The bundles are made as they are taken: a folder of
    100,000 files never holds 100,000 of them at once."""
    stems = set()  # the data folders the files name: X/ for X.mrxs, _X_/ for X.vsi (one pass)
    for name in files:
        tail = name[-len(MRXS_SUFFIX):].lower()
        if tail == MRXS_SUFFIX:
            stems.add(name[:-len(MRXS_SUFFIX)])
        elif tail.endswith(VSI_SUFFIX):
            stems.add(vsi_folder_name(name))
    stems.discard(None)
    listed = set(dirs)
    folders, walk = [], []
    for name in dirs:
        if name in stems:
            continue
        found = layout(os.path.join(root, name))
        kind = unit_kind(found)
        if kind is None:
            walk.append(Walk(name, found.direct_dicom))
        else:
            folders.append(Bundle(kind, (name,)))
    # A data folder pairs with its file whatever its own name (an ignore pattern such as
    # `*.tmp` must not part `A.tmp.mrxs` from `A.tmp/` and leave the folder waiting forever).
    data_folders = {stem for stem in stems if stem in listed or (
        os.path.isdir(os.path.join(root, stem)) and not os.path.islink(os.path.join(root, stem)))}

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
            if loose and is_dicom(os.path.join(root, name)):
                yield make(Bundle, (LOOSE_DICOM, (name,)))
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
