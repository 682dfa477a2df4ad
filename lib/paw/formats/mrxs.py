"""3DHistech MIRAX (Pannoramic): `NAME.mrxs` plus the folder `NAME/`.

OpenSlide (openslide-vendor-mirax.c) never reads the .mrxs file; it reads `NAME/Slidedat.ini`
(a key file: [GENERAL] SLIDE_ID, IMAGENUMBER_X/Y, ...; [HIERARCHICAL] the zoom levels and the
non-hierarchical layers; [DATAFILE] the data files), `Index.dat` ("01.02" + SLIDE_ID, then a
pointer to the zoom-level table and one to the non-hierarchical table, whose records are numbered
across all NONHIER values) and the data files ("01.02" + SLIDE_ID + file number, then JPEGs).
Associated images are the Scan data layer values ScanDataLayer_SlideBarcode (label),
ScanDataLayer_SlideThumbnail (macro) and ScanDataLayer_SlidePreview (thumbnail), JPEGs parsed at
open time: zeroing one while it is still named makes OpenSlide refuse the whole slide.

What paw does:
- Slidedat.ini is edited line by line (encoding, BOM, CRLF and every other line kept; values cut
  at the first `=` only): in [GENERAL] only the keys in GENERAL_KEEP keep their value; elsewhere
  values of keys naming a person, a date or time, a barcode, a path or a project are emptied;
  the label, macro and preview values are renamed so no reader looks for them any more;
- SLIDE_ID (a unique identifier of the scan, repeated in Index.dat and every data file) is
  replaced by a fresh random one of the same length everywhere;
- in the data files every byte that is not a tile of a zoom level or a slide-position record is
  zeroed: the label, macro and preview JPEGs and any other layer (scanner profiles carry
  `ProfileName` and operator names);
- the .mrxs file, which no reader uses, is zeroed;
- with `label: replace`, the drawn label (a JPEG) is appended to the smallest data file and the
  label's record in Index.dat points at it; the layer keeps its name, so OpenSlide lists `label`.
  A slide without a label layer gets none (adding a layer would renumber every record).
"""

import codecs
import configparser
import os
import re
import secrets
import struct
from dataclasses import dataclass, field

from .. import bundle, durable, ranges
from ..errors import FormatError
from ..sparse import first_nonzero
from .base import Handler, Plan, Prepared
from .edits import EditPlan

VERSION = b"01.02"
GENERAL_KEEP = frozenset({"SLIDE_VERSION", "SLIDE_TYPE", "IMAGENUMBER_X", "IMAGENUMBER_Y",
                          "OBJECTIVE_MAGNIFICATION", "CameraImageDivisionsPerSide",
                          "CURRENT_SLIDE_VERSION", "SLIDE_ID"})
ASSOCIATED = {"ScanDataLayer_SlideBarcode": "label", "ScanDataLayer_SlideThumbnail": "macro",
              "ScanDataLayer_SlidePreview": "thumbnail"}
POSITIONS = ("VIMSLIDE_POSITION_BUFFER", "StitchingIntensityLayer")
IDENTIFYING_KEY = re.compile(r"NAME|DATE|TIME|USER|OPERATOR|BARCODE_VALUE|PATH|PROJECT|COMMENT|"
                             r"LABEL|SERIAL|AUTHOR", re.IGNORECASE)
STRUCTURAL_KEY = re.compile(r"^(NON)?HIER_\d+_(NAME|COUNT|VAL_\d+(_SECTION)?)$|_SECTION$|"
                            r"^FILE_\d+$|^INDEXFILE$|_IMAGE_TYPE$|^EXPOSURE_TIME")
MAX_RECORDS = 1 << 20


def detect(path):
    return bundle.mrxs_folder(path) is not None


@dataclass
class UnitPlan(Plan):
    """Edits to every file of the slide (paths relative to the folder holding the .mrxs)."""
    files: dict = field(default_factory=dict)      # relative path -> EditPlan
    replace: dict = field(default_factory=dict)    # relative path -> new content (bytes)
    removed: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    drawn: dict = field(default_factory=dict)      # record, file, offset, length of a drawn label

    def apply(self, path):
        base = os.path.dirname(path)
        for rel, plan in self.files.items():
            plan.apply(os.path.join(base, rel))
        for rel, data in self.replace.items():
            target = os.path.join(base, rel)
            mode = os.stat(target).st_mode & 0o777
            durable.write_atomic(target, data, mode)

    def to_json(self):
        return {"files": {k: v.to_json() for k, v in self.files.items()},
                "replace": {k: v.hex() for k, v in self.replace.items()},
                "removed": self.removed, "actions": self.actions, "drawn": self.drawn}

    @classmethod
    def from_json(cls, data):
        return cls({k: EditPlan.from_json(v) for k, v in data["files"].items()},
                   {k: bytes.fromhex(v) for k, v in data["replace"].items()},
                   data["removed"], data["actions"], data.get("drawn", {}))

    def summary(self):
        zeros = [z for plan in self.files.values() for z in plan.zeros]
        writes = sum(len(plan.writes) for plan in self.files.values()) + len(self.replace)
        return (f"zero {sum(n for _, n in zeros)} unreferenced bytes in {len(zeros)} places in "
                f"{len(self.files)} files; rewrite {writes} headers, records and files; tiles untouched")


# --- Slidedat.ini, edited as lines ----------------------------------------------------------

def decode_ini(raw):
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
                          (codecs.BOM_UTF8, "utf-8-sig")):
        if raw.startswith(bom):
            return raw.decode(encoding), encoding
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


def encode_ini(text, encoding):
    return text.encode(encoding)  # utf-16 and utf-8-sig write their BOM again


class Ini:
    """Sections, keys and values of a key file, with each line kept as it was written."""

    def __init__(self, text):
        self.lines = text.splitlines(keepends=True)
        self.where = {}  # (section, key) -> line index
        section = None
        for i, line in enumerate(self.lines):
            stripped = line.strip()
            if stripped.startswith("[") and stripped.endswith("]"):
                section = stripped[1:-1]
            elif "=" in stripped and not stripped.startswith(("#", ";")) and section is not None:
                self.where[(section, line.split("=", 1)[0].strip())] = i

    def get(self, section, key, default=None):
        i = self.where.get((section, key))
        if i is None:
            return default
        return self.lines[i].split("=", 1)[1].rstrip("\r\n").strip()

    def set(self, section, key, value):
        i = self.where[(section, key)]
        line = self.lines[i]
        ending = line[len(line.rstrip("\r\n")):]
        self.lines[i] = line.split("=", 1)[0] + "=" + value + ending

    def keys(self):
        return list(self.where)

    def text(self):
        return "".join(self.lines)


def _int(ini, section, key):
    try:
        return int(ini.get(section, key, ""))
    except ValueError:
        raise FormatError(f"Slidedat.ini: {section}/{key} is missing or not a number") from None


def nonhier_records(ini):
    """[(record number, layer name, value, section)] in OpenSlide's numbering."""
    records, number = [], 0
    for i in range(_int(ini, "HIERARCHICAL", "NONHIER_COUNT")):
        name = ini.get("HIERARCHICAL", f"NONHIER_{i}_NAME", "")
        for j in range(_int(ini, "HIERARCHICAL", f"NONHIER_{i}_COUNT")):
            value = ini.get("HIERARCHICAL", f"NONHIER_{i}_VAL_{j}", "")
            section = ini.get("HIERARCHICAL", f"NONHIER_{i}_VAL_{j}_SECTION", "")
            records.append((number, name, value, section, f"NONHIER_{i}_VAL_{j}"))
            number += 1
    if number > MAX_RECORDS:
        raise FormatError("Slidedat.ini lists an implausible number of layers")
    return records


# --- Index.dat ------------------------------------------------------------------------------

class Index:
    def __init__(self, data, slide_id, zoom_levels, record_count, file_count):
        self.data = data
        head = VERSION + slide_id.encode("latin-1")
        if not data.startswith(head):
            raise FormatError("Index.dat does not start with the slide's SLIDE_ID")
        hier, nonhier = self._ints(len(head), 2)
        self.tiles = []    # (fileno, offset, length)
        for level in range(zoom_levels):
            (record,) = self._ints(hier + 4 * level, 1)
            zero, page = self._ints(record, 2)
            if zero != 0:
                raise FormatError("Index.dat: a zoom-level record does not start with 0")
            for _ in range(MAX_RECORDS):
                count, following = self._ints(page, 2)
                if not 0 <= count <= MAX_RECORDS:
                    raise FormatError("Index.dat: implausible page length")
                for n in range(count):
                    _, offset, length, fileno = self._ints(page + 8 + 16 * n, 4)
                    self.tiles.append(self._checked(fileno, offset, length, file_count))
                if following == 0:
                    break
                page = following
            else:
                raise FormatError("Index.dat: the pages of a zoom level loop")
        self.records = {}  # record number -> (fileno, offset, length)
        self.record_at = {}  # record number -> where its (offset, length, fileno) are stored
        for number in range(record_count):
            (record,) = self._ints(nonhier + 4 * number, 1)
            zero, page = self._ints(record, 2)
            self.record_at[number] = page + 16
            one, _, zero2, zero3, offset, length, fileno = self._ints(page, 7)
            if zero != 0 or one != 1 or zero2 != 0 or zero3 != 0:
                raise FormatError(f"Index.dat: layer record {number} is not in the known layout")
            self.records[number] = self._checked(fileno, offset, length, file_count)

    def _ints(self, at, n):
        if at < 0 or at + 4 * n > len(self.data):
            raise FormatError("Index.dat: a pointer leads past its end")
        return struct.unpack_from(f"<{n}i", self.data, at)

    @staticmethod
    def _checked(fileno, offset, length, file_count):
        if not 0 <= fileno < file_count or offset < 0 or length < 0:
            raise FormatError("Index.dat: a record points outside the data files")
        return fileno, offset, length


# --- the plan -------------------------------------------------------------------------------

def _read(path, limit=None):
    with open(path, "rb") as fh:
        return fh.read(limit) if limit else fh.read()


def describe(path):
    """Parse the slide: (Ini, encoding, folder name, data file names, Index)."""
    folder = bundle.mrxs_folder(path)
    slidedat = os.path.join(folder, "Slidedat.ini")
    if not os.path.isfile(slidedat):
        raise FormatError("MRXS folder has no Slidedat.ini")
    text, encoding = decode_ini(_read(slidedat, 1 << 20))
    ini = Ini(text)
    slide_id = ini.get("GENERAL", "SLIDE_ID")
    if not slide_id:
        raise FormatError("Slidedat.ini has no GENERAL/SLIDE_ID")
    if ini.get("HIERARCHICAL", "HIER_0_NAME") != "Slide zoom level":
        raise FormatError("Slidedat.ini: HIER_0 is not the slide zoom level")
    datafiles = [ini.get("DATAFILE", f"FILE_{i}", "") for i in range(_int(ini, "DATAFILE", "FILE_COUNT"))]
    for name in datafiles + [ini.get("HIERARCHICAL", "INDEXFILE", "")]:
        if not name or os.sep in name or name.startswith(".") or \
                not os.path.isfile(os.path.join(folder, name)):
            raise FormatError(f"MRXS data file {name!r} is missing")
    index = Index(_read(os.path.join(folder, ini.get("HIERARCHICAL", "INDEXFILE"))), slide_id,
                  _int(ini, "HIERARCHICAL", "HIER_0_COUNT"), len(nonhier_records(ini)), len(datafiles))
    return ini, encoding, os.path.basename(folder), datafiles, index


def _prepare(path, options, label):
    ini, encoding, folder, datafiles, index = describe(path)
    plan, found = UnitPlan(), {}
    base = os.path.dirname(path)
    sizes = [os.path.getsize(os.path.join(base, folder, name)) for name in datafiles]
    index_writes = []
    # The drawn label's JPEG goes after the end of the smallest data file; Index.dat offsets are
    # 32-bit signed, so that file must stay under 2 GiB (a label JPEG is < 100 kB).
    draw = label is not None and bool(sizes) and min(sizes) + (1 << 20) < 1 << 31
    if label is not None and not draw:
        plan.actions.append("no drawn label: every data file is near 2 GiB")
    old_id = ini.get("GENERAL", "SLIDE_ID")
    new_id = _fresh_id(old_id)
    plan.removed.append(old_id)
    plan.actions.append("SLIDE_ID replaced in every file")
    kept = {n: [] for n in range(len(datafiles))}
    for fileno, offset, length in index.tiles:
        kept[fileno].append((offset, length))
    for number, name, value, section, key in nonhier_records(ini):
        kind = ASSOCIATED.get(value) if name == "Scan data layer" else None
        if kind:
            found[kind] = found.get(kind, 0) + 1
        if name in POSITIONS or (kind == "macro" and options.keep_macro):
            fileno, offset, length = index.records[number]
            kept[fileno].append((offset, length))
        elif kind == "label" and draw and not plan.drawn:
            jpeg = label.jpeg()
            fileno = min(range(len(sizes)), key=sizes.__getitem__)
            plan.drawn = {"record": number, "file": fileno, "offset": sizes[fileno], "length": len(jpeg)}
            found["drawn label"] = 1
            index_writes.append((index.record_at[number], struct.pack("<ii", sizes[fileno], len(jpeg))))
            plan.actions.append("label replaced by a drawn pseudonym label")
        elif kind:
            ini.set("HIERARCHICAL", key, f"removed-by-paw-{number}")
            plan.actions.append(f"{kind} image destroyed")
        else:
            plan.actions.append(f"layer {name or value or number} cleared")
    for section, key in ini.keys():
        value = ini.get(section, key)
        if section == "GENERAL" and key == "SLIDE_ID":
            ini.set(section, key, new_id)
        elif value and (section == "GENERAL" and key not in GENERAL_KEEP or section != "GENERAL"
                        and IDENTIFYING_KEY.search(key) and not STRUCTURAL_KEY.search(key)):
            ini.set(section, key, "")
            plan.removed.append(value)
            plan.actions.append(f"{key} emptied")
    found["level"] = len(index.tiles)
    plan.replace[f"{folder}/Slidedat.ini"] = encode_ini(ini.text(), encoding)
    header_id = VERSION + new_id.encode("latin-1")
    plan.files[f"{folder}/{ini.get('HIERARCHICAL', 'INDEXFILE')}"] = EditPlan(
        writes=[(0, header_id)] + index_writes)
    for fileno, name in enumerate(datafiles):
        rel = f"{folder}/{name}"
        size = sizes[fileno]
        header = len(header_id) + 3
        spans = ranges.merge([(0, header)], kept[fileno])
        if spans.size and spans[-1][1] > size:
            raise FormatError(f"{name}: a record runs past the end of the file")
        plan.files[rel] = EditPlan(writes=[(0, header_id)], zeros=ranges.complement(spans, size),
                               kept_data=ranges.as_pairs(ranges.merge(kept[fileno])))
        if plan.drawn.get("file") == fileno:
            plan.files[rel].writes.append((plan.drawn["offset"], jpeg))
            plan.files[rel].added = [(plan.drawn["offset"], plan.drawn["length"])]
    mrxs_size = os.path.getsize(path)
    plan.files[os.path.basename(path)] = EditPlan(zeros=[(0, mrxs_size)] if mrxs_size else [])
    return Prepared(plan, found)


def _fresh_id(old):
    if re.fullmatch(r"[0-9a-fA-F]+", old):
        return secrets.token_hex(len(old) // 2 + 1)[: len(old)]
    return "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in old)


# --- the handler, and the independent check of its result -----------------------------------

class MrxsHandler(Handler):
    name = "mrxs"
    title = "3DHistech MRXS"
    label_place = "the label layer's record, if the slide has one, pointed at a new JPEG (OpenSlide: label)"
    plan_type = UnitPlan

    def _plan(self, path, options, pseudonym, label):
        return _prepare(path, options, label)

    def check(self, path, plan, options):
        return _check(path, plan, options)

    def searched(self, path, plan):
        """Every file of the slide, with the kept tiles it may skip."""
        base = os.path.dirname(path)
        for rel in list(plan.files) + list(plan.replace):
            sub = plan.files.get(rel)
            yield os.path.join(base, rel), ranges.merge(sub.kept_data if sub else [])


def _check(path, plan, options):
    """Independent re-read: configparser for Slidedat.ini, the index, the data file headers."""
    problems = []
    folder_path = bundle.mrxs_folder(path)
    text, _ = decode_ini(_read(os.path.join(folder_path, "Slidedat.ini")))
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    try:
        parser.read_string(text)
        slide_id = parser["GENERAL"]["SLIDE_ID"]
        values = dict(parser["HIERARCHICAL"])
    except (configparser.Error, KeyError) as exc:
        return [f"Slidedat.ini does not parse after editing ({type(exc).__name__})"]
    for key, value in values.items():
        drawn = ASSOCIATED.get(value) == "label" and plan.drawn
        if value in ASSOCIATED and not drawn and not (ASSOCIATED[value] == "macro" and options.keep_macro):
            problems.append(f"{value} is still listed")
    for key, value in parser["GENERAL"].items():
        if key not in GENERAL_KEEP and value.strip():
            problems.append(f"GENERAL/{key} still has a value")
    try:
        ini, _, folder, datafiles, index = describe(path)
    except FormatError as exc:
        return problems + [f"the edited slide does not parse: {exc}"]
    labels = [n for n, layer, value, _, _ in nonhier_records(ini)
              if layer == "Scan data layer" and ASSOCIATED.get(value) == "label"]
    if plan.drawn and (labels != [plan.drawn["record"]] or index.records[labels[0]] != (
            plan.drawn["file"], plan.drawn["offset"], plan.drawn["length"])):
        problems.append("the label layer does not point at the drawn label")
    for name in datafiles:
        if not _read(os.path.join(folder_path, name), 64).startswith(VERSION + slide_id.encode("latin-1")):
            problems.append(f"{name} does not carry the new SLIDE_ID")
    for rel, sub in plan.files.items():
        if rel.startswith(f"{folder}/") and sub.zeros:
            head = len(VERSION + slide_id.encode("latin-1")) + 3
            file = os.path.join(os.path.dirname(path), rel)
            referenced = ranges.merge([(0, head)], sub.kept_data, sub.added)
            stray = first_nonzero(file, ranges.complement(referenced, os.path.getsize(file)))
            if stray is not None:
                problems.append(f"{rel}: unreferenced bytes at {stray} are not cleared")
    return problems
