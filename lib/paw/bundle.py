"""Which files make one slide, decided by content, in one place.

Used by the inbox scan, by hand (`inspect`, `anonymize`), by naming and delivery, and by the
formats that read several files. A slide is one of:

  file    a single file (TIFF family, iSyntax, a single DICOM instance, ...)
  mrxs    `X.mrxs` plus the folder `X/` beside it (OpenSlide's MIRAX rule: the .mrxs names the
          folder holding Slidedat.ini, Index.dat and the data files)
  dicom   a folder whose every file is a DICOM Part 10 file (`DICM` at byte 128): the instances
          of one slide, whatever their names or extensions
  vsi     `X.vsi` plus the folder `_X_/` beside it (Olympus cellSens: the pixels are in
          `_X_/stackN/frame_t*.ets`; Bio-Formats and bioio-vsi find them by this name)

Kept free of parsing code: the idle tick walks the inbox with it.
"""

import os
from dataclasses import dataclass

DICOM_MAGIC_AT, DICOM_MAGIC = 128, b"DICM"
MRXS_SUFFIX = ".mrxs"
VSI_SUFFIX = ".vsi"
FILE, MRXS, DICOM, VSI = "file", "mrxs", "dicom", "vsi"


@dataclass(frozen=True)
class Bundle:
    kind: str
    members: tuple   # paths; the main member first (the .mrxs file, the DICOM folder, the file)

    @property
    def main(self):
        return self.members[0]


def is_dicom(path):
    """A DICOM Part 10 file: 128-byte preamble, then `DICM`."""
    try:
        with open(path, "rb") as fh:
            return fh.read(DICOM_MAGIC_AT + 4)[DICOM_MAGIC_AT:] == DICOM_MAGIC
    except OSError:
        return False


def _visible(folder, ignored=None):
    """Entries of a folder that are not hidden (nor ignored), sorted by name."""
    return sorted((e for e in os.scandir(folder)
                   if not e.name.startswith(".") and not (ignored and ignored(e.name))),
                  key=lambda e: e.name)


def dicom_instances(folder):
    """The files of a DICOM slide folder, in name order."""
    return [e.path for e in _visible(folder)]


def is_dicom_folder(folder, ignored=None):
    """A folder of DICOM files and nothing else (no sub-folders) is one DICOM slide."""
    try:
        entries = _visible(folder, ignored)
    except OSError:
        return False
    return bool(entries) and all(e.is_file(follow_symlinks=False) and is_dicom(e.path) for e in entries)


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


def in_folder(root, files, dirs, ignored):
    """The slides directly in one inbox folder: (bundles with paths relative to `root`'s
    listing, sub-folders to walk further). `files` and `dirs` are the folder's names already
    stripped of ignored ones; MRXS data folders and DICOM folders are slides, not walked."""
    stems = {name[:-len(MRXS_SUFFIX)] for name in files if name.lower().endswith(MRXS_SUFFIX)}
    stems |= {vsi_folder_name(name) for name in files} - {None}
    bundles, walk = [], []
    for name in dirs:
        if name in stems:
            continue
        if is_dicom_folder(os.path.join(root, name), ignored):
            bundles.append(Bundle(DICOM, (name,)))
        else:
            walk.append(name)
    for name in files:
        stem = name[:-len(MRXS_SUFFIX)]
        if name.lower().endswith(MRXS_SUFFIX) and stem in dirs:
            bundles.append(Bundle(MRXS, (name, stem)))
        elif vsi_folder_name(name) in dirs:
            bundles.append(Bundle(VSI, (name, vsi_folder_name(name))))
        else:
            bundles.append(Bundle(FILE, (name,)))
    return bundles, walk


def member_names(kind, stem, extension):
    """The delivered names of a slide's members, from its output stem: `P.svs`; `P.mrxs` and
    its folder `P`; `P.vsi` and its folder `_P_`; a DICOM folder `P`."""
    if kind == MRXS:
        return [stem + extension.lower(), stem]
    if kind == VSI:
        return [stem + extension.lower(), f"_{stem}_"]
    if kind == DICOM:
        return [stem]
    return [stem + extension.lower()]
