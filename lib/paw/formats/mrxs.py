"""3DHistech MIRAX (Pannoramic): `NAME.mrxs` plus the folder `NAME/`.

OpenSlide (openslide-vendor-mirax.c) never reads the .mrxs file; it reads `NAME/Slidedat.ini`
(a GLib key file: [GENERAL] SLIDE_ID, IMAGENUMBER_X/Y, ...; [HIERARCHICAL] the zoom levels and the
non-hierarchical layers; [DATAFILE] the data files), `Index.dat` ("01.02" + SLIDE_ID, then a
pointer to the hierarchical table (one record per zoom level first) and one to the
non-hierarchical table, whose records are numbered across all NONHIER values) and the data files
("01.02" + SLIDE_ID + file number, then the images). Associated images are the Scan data layer
values ScanDataLayer_SlideBarcode (label), ScanDataLayer_SlideThumbnail (macro) and
ScanDataLayer_SlidePreview (thumbnail), JPEGs parsed at open time: zeroing one while it is still
named makes OpenSlide refuse the whole slide. Every key of Slidedat.ini is shown as a property.

What paw does, the whole bundle:
- the data folder holds exactly Slidedat.ini, the index and the data files it lists; clutter
  (bundle.CLUTTER_*) is removed and reported, any other file refuses the slide;
- Slidedat.ini is written anew from the typed allow-list (mrxstable.py): canonical section
  names, only the keys of each section's role, typed values kept, known identifying keys
  (SLIDE_NAME, BARCODE_VALUE, SCANNER_HARDWARE_ID ...) empty, unknown keys, comments, duplicate
  and localized keys gone; UTF-8 with BOM and CRLF (GLib's key file format). Input GLib refuses
  (`;` lines, lines that are not a key, a section or a comment) refuses the slide;
- SLIDE_ID (a record id of the scanner's database) is replaced by a fresh one everywhere;
- the index file becomes `Index.dat`, the data files `Data0000.dat` ... (a data file named
  after the case loses its name);
- in Index.dat every byte that is not the header, a table, a record or a page of the structure
  OpenSlide reads is zeroed (slack, leftovers, text appended);
- in the data files every byte that is not a tile of a zoom level or a slide-position record
  is zeroed: the label, macro and preview JPEGs and any other layer (scanner profiles carry
  `ProfileName` and operator names); the header carries the new SLIDE_ID and the file number;
- the .mrxs file, which no reader uses (3DHistech writes a preview picture there), is zeroed;
- with `label: replace`, the drawn label (a JPEG) is appended to the smallest data file and the
  label's record in Index.dat points at it; the layer keeps its name, so OpenSlide lists `label`.
  A slide without a label layer gets none (adding a layer would renumber every record).

Every value that goes is searched for afterwards (verify.py); a value that stays may not contain
one (the slide is refused, or the key emptied). mrxsaudit.py checks the result independently.
"""

import codecs
import os
import re
import secrets
import struct
from dataclasses import dataclass, field

from .. import bundle, durable, ranges
from ..errors import FormatError
from . import edits, mrxstable as table, tileimage, undo as undo_log
from .base import Handler, Plan, Prepared
from .edits import EditPlan

VERSION = table.INDEX_VERSION
MAX_COUNT = 1 << 16      # layers, values, files: more is not a slide
MAX_RECORDS = 1 << 20
SEARCHED_MIN = 4         # verify.MIN_SEARCH_LENGTH
MEASUREMENT = re.compile(r"[-+]?[0-9]*\.[0-9]+([eE][-+]?[0-9]+)?")


def detect(path):
    return bundle.mrxs_folder(path) is not None


@dataclass
class UnitPlan(Plan):
    """Edits to every file of the slide (paths relative to the folder holding the .mrxs), applied
    in this order: `delete` (clutter), `renames` (old, new), `files` (byte edits, by new name),
    `replace` (whole new content)."""
    files: dict = field(default_factory=dict)      # relative path -> EditPlan
    replace: dict = field(default_factory=dict)    # relative path -> new content (bytes)
    removed: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    drawn: dict = field(default_factory=dict)      # record, file, offset, length of a drawn label
    renames: list = field(default_factory=list)    # [old, new] relative paths
    delete: list = field(default_factory=list)     # relative paths (files or clutter folders)
    slide_id: str = ""                             # the new SLIDE_ID

    def apply(self, path, undo=None):
        """Apply the edits in order. With `undo` nothing of the slide is destroyed: deleted files
        and folders move into `undo/deleted/`, renames are undone by name, every edited file's
        original bytes are kept (one range log per file, all within undo.LIMIT together) before
        the first byte edit, and the replaced files (Slidedat.ini) are overwritten in place: no
        temporary name is ever made among the slide's files."""
        import shutil
        base = os.path.dirname(path)
        for rel in self.delete:
            target = os.path.join(base, rel)
            if undo is not None:
                kept = os.path.join(undo, "deleted", rel)
                if os.path.lexists(target) and not os.path.lexists(kept):
                    os.makedirs(os.path.dirname(kept), 0o700, exist_ok=True)
                    os.rename(target, kept)
            elif os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            elif os.path.lexists(target):
                os.unlink(target)
        for old, new in self.renames:  # a replay finds the new name and no old one
            if os.path.lexists(os.path.join(base, old)) and not os.path.lexists(os.path.join(base, new)):
                os.rename(os.path.join(base, old), os.path.join(base, new))
        if self.renames:
            durable.fsync_dir(os.path.join(base, os.path.dirname(self.renames[0][1])))
        if undo is not None:
            budget = edits.keep_originals(base, self.files, undo)
            for i, rel in enumerate(self.replace):
                target = os.path.join(base, rel)
                budget -= undo_log.RangeLog(os.path.join(undo, f"replace-{i}")).save(
                    target, [(0, os.path.getsize(target))], [], budget)
        for rel, plan in self.files.items():
            plan.apply(os.path.join(base, rel))
        for rel, data in self.replace.items():
            target = os.path.join(base, rel)
            if undo is None:
                mode = os.stat(target).st_mode & 0o777
                durable.write_atomic(target, data, mode)
                continue
            fd = os.open(target, os.O_RDWR | os.O_NOFOLLOW)
            try:
                os.pwrite(fd, data, 0)
                os.ftruncate(fd, len(data))
                os.fsync(fd)
            finally:
                os.close(fd)

    def rollback(self, path, undo):
        """Bytes back (by the new names), names back, deleted files back."""
        base = os.path.dirname(path)
        edits.roll_back(base, self.files, undo)
        for i, rel in enumerate(self.replace):
            undo_log.RangeLog(os.path.join(undo, f"replace-{i}")).restore(os.path.join(base, rel))
        for old, new in reversed(self.renames):
            if os.path.lexists(os.path.join(base, new)) and not os.path.lexists(os.path.join(base, old)):
                os.rename(os.path.join(base, new), os.path.join(base, old))
        for rel in reversed(self.delete):
            kept = os.path.join(undo, "deleted", rel)
            if os.path.lexists(kept) and not os.path.lexists(os.path.join(base, rel)):
                os.makedirs(os.path.dirname(os.path.join(base, rel)), exist_ok=True)
                os.rename(kept, os.path.join(base, rel))
        durable.fsync_dir(os.path.dirname(path))

    def to_json(self):
        return {"files": {k: v.to_json() for k, v in self.files.items()},
                "replace": {k: v.hex() for k, v in self.replace.items()},
                "removed": self.removed, "actions": self.actions, "drawn": self.drawn,
                "renames": self.renames, "delete": self.delete, "slide_id": self.slide_id}

    @classmethod
    def from_json(cls, data):
        return cls({k: EditPlan.from_json(v) for k, v in data["files"].items()},
                   {k: bytes.fromhex(v) for k, v in data["replace"].items()},
                   data["removed"], data["actions"], data.get("drawn", {}),
                   [list(r) for r in data.get("renames", [])], data.get("delete", []),
                   data.get("slide_id", ""))

    def summary(self):
        zeros = [z for plan in self.files.values() for z in plan.zeros]
        writes = sum(len(plan.writes) for plan in self.files.values()) + len(self.replace)
        return (f"zero {sum(n for _, n in zeros)} unreferenced bytes in {len(zeros)} places in "
                f"{len(self.files)} files; rewrite {writes} headers, records and files; rename "
                f"{len(self.renames)} files; tiles untouched")


# --- Slidedat.ini as GLib reads it ------------------------------------------------------------

def decode_ini(raw):
    """The text of Slidedat.ini. GLib reads UTF-8 (a BOM is skipped); UTF-16 is decoded too
    (GLib refuses it, so OpenSlide cannot open such a slide, but it carries the same keys)."""
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
                          (codecs.BOM_UTF8, "utf-8-sig")):
        if raw.startswith(bom):
            return raw.decode(encoding, "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class KeyFile:
    """Sections and keys with GLib's semantics: the last of duplicated keys wins, duplicated
    sections merge, `#` lines are comments, a line whose first non-blank character is `=` is
    blanked (as OpenSlide does), `KEY[locale]` keys are translations. Everything that is not
    a key of a section - comments, blanked lines, translations - is collected in `extra` (it
    goes, and is searched for)."""

    def __init__(self, text):
        self.sections, self.extra, self.all_values = {}, [], {}
        section = None
        for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                self.extra.append(stripped[1:].strip())
            elif stripped.startswith("["):
                if not stripped.endswith("]") or len(stripped) < 3:
                    raise FormatError(f"Slidedat.ini line {number} is not a valid section header")
                section = stripped[1:-1]
                self.sections.setdefault(section, {})
            elif stripped.startswith("="):
                self.extra.append(stripped[1:].strip())
            elif "=" in stripped and section is not None:
                key, value = stripped.split("=", 1)
                key, value = key.strip(), value.strip()
                if re.fullmatch(r".+\[[^\]]*\]", key):
                    self.extra.append(value)
                    continue
                self.sections[section][key] = value
                self.all_values.setdefault((section, key), []).append(value)
            else:
                raise FormatError(f"Slidedat.ini line {number} is not a key, a section or a comment "
                                  "(OpenSlide cannot read it either)")

    def get(self, section, key, default=None):
        return self.sections.get(section, {}).get(key, default)

    def int(self, section, key, low=0, high=MAX_COUNT):
        value = self.get(section, key, "")
        if not re.fullmatch(r"[+-]?[0-9]{1,9}", value) or not low <= int(value) <= high:
            raise FormatError(f"Slidedat.ini: {section}/{key} is missing or not a plausible number")
        return int(value)


@dataclass
class Layers:
    """[HIERARCHICAL] understood: zoom and other hierarchical layers, non-hierarchical records."""
    hier: list          # (name, [(value, section)]) per HIER layer
    nonhier: list       # (name, [(value, section, imagenumber_x, imagenumber_y)]) per NONHIER layer
    index_file: str
    data_files: list

    def records(self):
        """[(record number, layer number, value number, layer name, value)] in OpenSlide's numbering."""
        found, number = [], 0
        for i, (name, values) in enumerate(self.nonhier):
            for j, value in enumerate(values):
                found.append((number, i, j, name, value[0]))
                number += 1
        return found


def layers(ini):
    hier_count = ini.int(table.HIERARCHICAL, "HIER_COUNT", 1)
    nonhier_count = ini.int(table.HIERARCHICAL, "NONHIER_COUNT")
    hier, nonhier = [], []
    for i in range(hier_count):
        count = ini.int(table.HIERARCHICAL, f"HIER_{i}_COUNT")
        hier.append((ini.get(table.HIERARCHICAL, f"HIER_{i}_NAME", ""),
                     [(ini.get(table.HIERARCHICAL, f"HIER_{i}_VAL_{j}", ""),
                       ini.get(table.HIERARCHICAL, f"HIER_{i}_VAL_{j}_SECTION")) for j in range(count)]))
    for i in range(nonhier_count):
        count = ini.int(table.HIERARCHICAL, f"NONHIER_{i}_COUNT")
        nonhier.append((ini.get(table.HIERARCHICAL, f"NONHIER_{i}_NAME", ""),
                        [(ini.get(table.HIERARCHICAL, f"NONHIER_{i}_VAL_{j}", ""),
                          ini.get(table.HIERARCHICAL, f"NONHIER_{i}_VAL_{j}_SECTION"),
                          ini.get(table.HIERARCHICAL, f"NONHIER_{i}_VAL_{j}_IMAGENUMBER_X"),
                          ini.get(table.HIERARCHICAL, f"NONHIER_{i}_VAL_{j}_IMAGENUMBER_Y"))
                         for j in range(count)]))
    if sum(len(v) for _, v in nonhier) > MAX_RECORDS:
        raise FormatError("Slidedat.ini lists an implausible number of layers")
    if not hier or hier[0][0] != table.ZOOM_NAME:
        raise FormatError("Slidedat.ini: HIER_0 is not the slide zoom level")
    files = [ini.get(table.DATAFILE, f"FILE_{i}", "") for i in range(ini.int(table.DATAFILE, "FILE_COUNT", 1))]
    return Layers(hier, nonhier, ini.get(table.HIERARCHICAL, "INDEXFILE", ""), files)


# --- Index.dat --------------------------------------------------------------------------------

class Index:
    """Index.dat as OpenSlide reads it; `structure` is every byte range of it OpenSlide uses."""

    def __init__(self, data, slide_id, zoom_levels, record_count, file_count):
        self.data = data
        head = VERSION + slide_id.encode("latin-1")
        if not data.startswith(head):
            raise FormatError("Index.dat does not start with the slide's SLIDE_ID")
        hier, nonhier = self._ints(len(head), 2)
        self.structure = [(0, len(head) + 8), (hier, 4 * zoom_levels), (nonhier, 4 * record_count)]
        self.tiles = []    # (fileno, offset, length)
        self.levels = []   # the tiles of each zoom level
        for level in range(zoom_levels):
            self.levels.append([])
            (record,) = self._ints(hier + 4 * level, 1)
            zero, page = self._ints(record, 2)
            if zero != 0:
                raise FormatError("Index.dat: a zoom-level record does not start with 0")
            self.structure.append((record, 8))
            for _ in range(MAX_RECORDS):
                count, following = self._ints(page, 2)
                if not 0 <= count <= MAX_RECORDS:
                    raise FormatError("Index.dat: implausible page length")
                self.structure.append((page, 8 + 16 * count))
                for n in range(count):
                    _, offset, length, fileno = self._ints(page + 8 + 16 * n, 4)
                    self.tiles.append(self._checked(fileno, offset, length, file_count))
                    self.levels[-1].append(self.tiles[-1])
                if following == 0:
                    break
                page = following
            else:
                raise FormatError("Index.dat: the pages of a zoom level loop")
        self.records = {}    # record number -> (fileno, offset, length)
        self.record_at = {}  # record number -> where its (offset, length, fileno) are stored
        for number in range(record_count):
            (record,) = self._ints(nonhier + 4 * number, 1)
            zero, page = self._ints(record, 2)
            self.record_at[number] = page + 16
            one, _, zero2, zero3, offset, length, fileno = self._ints(page, 7)
            if zero != 0 or one != 1 or zero2 != 0 or zero3 != 0:
                raise FormatError(f"Index.dat: layer record {number} is not in the known layout")
            self.structure += [(record, 8), (page, 28)]
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
    """Parse the slide: (KeyFile, Layers, Index), refusing what OpenSlide would refuse."""
    folder = bundle.mrxs_folder(path)
    slidedat = os.path.join(folder, table.SLIDEDAT)
    if not os.path.isfile(slidedat):
        raise FormatError("MRXS folder has no Slidedat.ini")
    if os.path.getsize(slidedat) > table.SLIDEDAT_MAX:
        raise FormatError("Slidedat.ini is larger than a slide description can be (1 MiB)")
    ini = KeyFile(decode_ini(_read(slidedat)))
    slide_id = ini.get(table.GENERAL, "SLIDE_ID")
    if not slide_id or not re.fullmatch(r"[!-~]{1,128}", slide_id):
        raise FormatError("Slidedat.ini has no GENERAL/SLIDE_ID that Index.dat could match")
    found = layers(ini)
    for name in found.data_files + [found.index_file]:
        if not name or "/" in name or os.sep in name or name.startswith(".") or \
                not os.path.isfile(os.path.join(folder, name)):
            raise FormatError("an MRXS data file Slidedat.ini lists is missing")
    index = Index(_read(os.path.join(folder, found.index_file)), slide_id, len(found.hier[0][1]),
                  len(found.records()), len(found.data_files))
    return ini, found, index


class Writer:
    """Slidedat.ini written anew from the allow-list: every value that does not stay is collected
    in `removed`, every key or section that goes in `actions` (known names only)."""

    def __init__(self, ini, searched=()):
        self.ini, self.searched = ini, searched
        self.lines, self.removed, self.actions = [], list(ini.extra), []
        if ini.extra:
            self.actions.append("Slidedat.ini comments, blanked and translated keys removed")

    def holds_removed(self, value):
        return any(needle in value for needle in self.searched)

    def section(self, name, role, source, extra=()):
        """One section: `extra` (key, value) pairs paw writes first, then the role's keys."""
        self.lines.append(f"[{name}]")
        for key, value in extra:
            self.lines.append(f"{key} = {value}")
        keys = table.ROLE_KEYS[role]
        values = self.ini.sections.get(source, {}) if source else {}
        for key, value in values.items():
            if key not in keys:
                self.removed.extend(self.ini.all_values[(source, key)])
                self.actions.append(f"an unknown key of a {role} section removed")
                continue
            rule = keys[key]
            if rule == "replaced" or (role == table.GENERAL and key == "SLIDE_ID"):
                continue
            every = self.ini.all_values[(source, key)]
            if rule is not table.EMPTIED and rule.accepts(value) and not self.holds_removed(value):
                if len(set(every)) > 1:
                    raise FormatError(f"Slidedat.ini: {key} is there twice with different values")
                self.lines.append(f"{key} = {value}")
                continue
            if key in table.REQUIRED.get(role, ()):
                raise FormatError(f"Slidedat.ini: {key} is not in the allow-list's shape, and OpenSlide needs it")
            self.removed.extend(every)
            if any(v for v in every):
                self.actions.append(f"{key} emptied")
            self.lines.append(f"{key} = ")
        if source and source != name and not STRUCTURAL_SECTION.fullmatch(source):
            self.removed.append(source)  # a section's name is text too
        missing = table.REQUIRED.get(role, set()) - set(values)
        if missing:
            raise FormatError(f"Slidedat.ini: a {role} section lacks {sorted(missing)[0]} (OpenSlide needs it)")

    def text(self):
        return "\ufeff" + "\r\n".join(self.lines) + "\r\n"


def _structure(found, kept_values):
    """[HIERARCHICAL] and [DATAFILE] lines from what was understood, with canonical names."""
    lines, sections = [f"HIER_COUNT = {len(found.hier)}"], []
    for i, (name, values) in enumerate(found.hier):
        role = table.ZOOM_LEVEL if i == 0 else table.HIER_LEVEL
        lines.append(f"HIER_{i}_NAME = {name if table.HIER_NAMES.accepts(name) else table.layer_name('Hier', i)}")
        lines.append(f"HIER_{i}_COUNT = {len(values)}")
        for j, (value, source) in enumerate(values):
            canonical = value if i == 0 and table.ZOOM_VALUE.accepts(value) else \
                (f"ZoomLevel_{j}" if i == 0 else table.value_name(i, j))
            lines.append(f"HIER_{i}_VAL_{j} = {canonical}")
            if source is not None:
                lines.append(f"HIER_{i}_VAL_{j}_SECTION = {table.section_name(role, i, j)}")
                sections.append((table.section_name(role, i, j), role, source))
        sections.append((table.section_name(table.HIER_LAYER, i), table.HIER_LAYER, f"LAYER_{i}_SECTION"))
    lines.append(f"NONHIER_COUNT = {len(found.nonhier)}")
    for i, (name, values) in enumerate(found.nonhier):
        lines.append(f"NONHIER_{i}_NAME = {name if table.NONHIER_NAMES.accepts(name) else table.layer_name('NonHier', i)}")
        lines.append(f"NONHIER_{i}_COUNT = {len(values)}")
        for j, (value, source, images_x, images_y) in enumerate(values):
            lines.append(f"NONHIER_{i}_VAL_{j} = {kept_values[(i, j)]}")
            if source is not None:
                lines.append(f"NONHIER_{i}_VAL_{j}_SECTION = {table.section_name(table.NONHIER_VALUE, i, j)}")
                sections.append((table.section_name(table.NONHIER_VALUE, i, j), table.NONHIER_VALUE, source))
            for axis, number in (("X", images_x), ("Y", images_y)):
                if number is not None and re.fullmatch(r"[0-9]{1,9}", number):
                    lines.append(f"NONHIER_{i}_VAL_{j}_IMAGENUMBER_{axis} = {number}")
        sections.append((table.section_name(table.NONHIER_LAYER, i), table.NONHIER_LAYER, f"NONHIERLAYER_{i}_SECTION"))
    lines.append(f"INDEXFILE = {table.INDEX_FILE}")
    datafile = [f"FILE_COUNT = {len(found.data_files)}"] + \
        [f"FILE_{i} = {table.DATA_FILE.format(i)}" for i in range(len(found.data_files))]
    return lines, datafile, sections


def _canonical_names(found):
    """[(old, new)] renames so the index is Index.dat and the data files Data0000.dat ...; names
    already in that form stay. A target another member already bears (files named out of order)
    would make the renames order-dependent, and a replay ambiguous: refused."""
    renames = [(name, table.DATA_FILE.format(i)) for i, name in enumerate(found.data_files)
               if name != table.DATA_FILE.format(i)]
    if found.index_file != table.INDEX_FILE:
        renames.append((found.index_file, table.INDEX_FILE))
    members = set(found.data_files) | {found.index_file}
    if any(new in members for _, new in renames) or len(members) != len(found.data_files) + 1:
        raise FormatError("MRXS data files are named out of order (one bears another's canonical "
                          "name); rename them Data0000.dat ... by hand")
    return renames


STRUCTURAL_SECTION = re.compile(r"(NON)?HIER(LAYER)?_[0-9]+(_VAL_[0-9]+|_LEVEL_[0-9]+)?_SECTION|"
                                r"LAYER_[0-9]+(_LEVEL_[0-9]+)?_SECTION")


def _prepare(path, options, label):
    ini, found, index = describe(path)
    folder_path = bundle.mrxs_folder(path)
    folder = os.path.basename(folder_path)
    plan, kept_found = UnitPlan(), {}
    listed = {table.SLIDEDAT, found.index_file, *found.data_files}
    contents = bundle.contents(folder_path, lambda p: os.path.basename(p) in listed, recurse=False)
    if contents.strays:
        raise FormatError(f"{contents.strays[0]!r}: a file in the MRXS data folder that Slidedat.ini does not list")
    for rel, what in contents.clutter:
        plan.delete.append(f"{folder}/{rel}")
        plan.actions.append(f"{what} removed")

    sizes = [os.path.getsize(os.path.join(folder_path, name)) for name in found.data_files]
    # The drawn label's JPEG goes after the end of the smallest data file; Index.dat offsets are
    # 32-bit signed, so that file must stay under 2 GiB (a label JPEG is < 100 kB).
    draw = label is not None and bool(sizes) and min(sizes) + (1 << 20) < 1 << 31
    if label is not None and not draw:
        plan.actions.append("no drawn label: every data file is near 2 GiB")
    old_id = ini.get(table.GENERAL, "SLIDE_ID")
    plan.slide_id = _fresh_id(old_id)
    plan.removed.append(old_id)
    plan.actions.append("SLIDE_ID replaced in every file")
    kept = {n: [] for n in range(len(found.data_files))}
    for fileno, offset, length in index.tiles:
        kept[fileno].append((offset, length))
    index_writes, kept_values, jpeg = [], {}, None
    for number, i, j, name, value in found.records():
        kind = table.ASSOCIATED.get(value) if name == table.SCAN_DATA_LAYER else None
        if kind:
            kept_found[kind] = kept_found.get(kind, 0) + 1
        kept_values[(i, j)] = value if table.NONHIER_VALUES.accepts(value) else table.value_name(i, j)
        if name in table.POSITIONS or (kind == "macro" and options.keep_macro):
            fileno, offset, length = index.records[number]
            kept[fileno].append((offset, length))
        elif kind == "label" and draw and not plan.drawn:
            jpeg = label.jpeg()
            fileno = min(range(len(sizes)), key=sizes.__getitem__)
            plan.drawn = {"record": number, "file": fileno, "offset": sizes[fileno], "length": len(jpeg)}
            kept_found["drawn label"] = 1
            index_writes.append((index.record_at[number], struct.pack("<ii", sizes[fileno], len(jpeg))))
            plan.actions.append("label replaced by a drawn pseudonym label")
        elif kind:
            kept_values[(i, j)] = table.REMOVED_VALUE.format(number)
            plan.actions.append(f"{kind} image destroyed")
        else:
            plan.actions.append("a non-hierarchical layer cleared")
        if not table.NONHIER_VALUES.accepts(value):
            plan.removed.append(value)
    kept_found["level"] = len(index.tiles)
    _refuse_shared_bytes(index, found, sizes)

    hierarchical, datafile, sections = _structure(found, kept_values)
    renames = _canonical_names(found)
    removed_names = [n for n, _ in found.hier if not table.HIER_NAMES.accepts(n)] + \
        [n for n, _ in found.nonhier if not table.NONHIER_NAMES.accepts(n)] + \
        [v[0] for i, (_, values) in enumerate(found.hier) for j, v in enumerate(values)
         if not (i == 0 and table.ZOOM_VALUE.accepts(v[0]))] + [old for old, _ in renames]
    writer = Writer(ini)
    _write(ini, writer, plan.slide_id, hierarchical, datafile, sections)
    searched = _searched(plan.removed + writer.removed + removed_names)
    writer = Writer(ini, {v for v in searched if len(v) >= SEARCHED_MIN})
    slidedat = _write(ini, writer, plan.slide_id, hierarchical, datafile, sections)
    plan.actions += writer.actions
    plan.removed = sorted(searched | _searched(writer.removed))
    plan.replace[f"{folder}/{table.SLIDEDAT}"] = slidedat.encode("utf-8")
    _check_tiles(folder_path, ini, found, index, full=False)  # IMAGE_FORMAT is typed by now

    plan.renames = [[f"{folder}/{old}", f"{folder}/{new}"] for old, new in renames]
    if renames:
        plan.actions.append("MRXS files renamed to Index.dat and Data0000.dat ...")
    header_id = VERSION + plan.slide_id.encode("latin-1")
    size = len(index.data)
    plan.files[f"{folder}/{table.INDEX_FILE}"] = EditPlan(
        writes=[(0, header_id)] + index_writes,
        zeros=ranges.complement(ranges.merge(index.structure), size))
    for fileno in range(len(found.data_files)):
        rel = f"{folder}/{table.DATA_FILE.format(fileno)}"
        header = header_id + f"{fileno:03d}".encode("ascii")
        spans = ranges.merge([(0, len(header))], kept[fileno])
        if spans.size and spans[-1][1] > sizes[fileno]:
            raise FormatError("a record runs past the end of its data file")
        plan.files[rel] = EditPlan(writes=[(0, header)], zeros=ranges.complement(spans, sizes[fileno]),
                                   kept_data=ranges.as_pairs(ranges.merge(kept[fileno])))
        if plan.drawn.get("file") == fileno:
            plan.files[rel].writes.append((plan.drawn["offset"], jpeg))
            plan.files[rel].added = [(plan.drawn["offset"], plan.drawn["length"])]
    mrxs_size = os.path.getsize(path)
    plan.files[os.path.basename(path)] = EditPlan(zeros=[(0, mrxs_size)] if mrxs_size else [])
    plan.actions = list(dict.fromkeys(plan.actions))
    return Prepared(plan, kept_found)


def _refuse_shared_bytes(index, found, sizes):
    """Every byte range Index.dat names in a data file belongs to one image only: a tile that
    shares bytes with the label, macro or preview record (or with any other record, or
    another tile) would keep what the plan destroys, or destroy what it keeps."""
    spans = {n: [] for n in range(len(sizes))}
    for fileno, offset, length in index.tiles:
        spans[fileno].append((offset, length, "a tile"))
    for number, _, _, name, value in found.records():
        fileno, offset, length = index.records[number]
        kind = table.ASSOCIATED.get(value) if name == table.SCAN_DATA_LAYER else None
        spans[fileno].append((offset, length, f"the {kind} image" if kind else "a non-tile record"))
    for fileno, items in spans.items():
        end, holder = 0, None
        for offset, length, what in sorted(i for i in items if i[1] > 0):
            if offset < end:
                raise FormatError(f"Index.dat: {what} and {holder} share bytes of data file {fileno} "
                                  "(each image must have bytes of its own)")
            if offset + length > sizes[fileno]:
                raise FormatError("a record runs past the end of its data file")
            end, holder = offset + length, what


def _check_tiles(folder, ini, found, index, full):
    """The tile images of every zoom level, by sample (tileimage.problems: no COM, APPn, text
    chunk or trailing bytes); FormatError naming the first one that holds something else."""
    kinds = [ini.get(section, "IMAGE_FORMAT", "JPEG") if section else "JPEG" for _, section in found.hier[0][1]]
    problems = tileimage.problems([os.path.join(folder, name) for name in found.data_files],
                                  list(zip(kinds, index.levels)), full)
    if problems:
        raise FormatError(problems[0])


def _write(ini, writer, slide_id, hierarchical, datafile, sections):
    writer.section(table.GENERAL, table.GENERAL, table.GENERAL, [("SLIDE_ID", slide_id)])
    writer.lines += [f"[{table.HIERARCHICAL}]"] + hierarchical + [f"[{table.DATAFILE}]"] + datafile
    written = {table.GENERAL, table.HIERARCHICAL, table.DATAFILE}
    for name, role, source in sections:
        if source in ini.sections or role != table.HIER_LAYER and role != table.NONHIER_LAYER:
            writer.section(name, role, source if source in ini.sections else None)
            written.add(source)
    for name in ini.sections:
        if name not in written:
            if not STRUCTURAL_SECTION.fullmatch(name):
                writer.removed.append(name)
            writer.removed.extend(v for key in ini.sections[name] for v in ini.all_values[(name, key)])
            writer.actions.append("a section no layer refers to removed")
    return writer.text()


def _searched(values):
    """The removed values verification searches for: all of them but measurements (a decimal
    number with a fraction identifies no one, and the same figure may well stay elsewhere) and
    the table's own vocabulary (a slide named `JPEG` must not take IMAGE_FORMAT with it)."""
    return {v for v in values if v and not MEASUREMENT.fullmatch(v) and v.casefold() not in table.VOCABULARY}


def _fresh_id(old):
    if re.fullmatch(r"[0-9a-fA-F]+", old):
        fresh = secrets.token_hex(len(old) // 2 + 1)[: len(old)]
        return fresh.upper() if old.isupper() else fresh
    return "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in old)


# --- the handler ------------------------------------------------------------------------------

class MrxsHandler(Handler):
    name = "mrxs"
    title = "3DHistech MRXS"
    label_place = "the label layer's record, if the slide has one, pointed at a new JPEG (OpenSlide: label)"
    plan_type = UnitPlan

    def _plan(self, path, options, pseudonym, label):
        return _prepare(path, options, label)

    def check(self, path, plan, options):
        from . import mrxsaudit
        return mrxsaudit.audit(path, plan, options)

    def searched(self, path, plan):
        """Every file of the slide, with the kept tiles it may skip."""
        base = os.path.dirname(path)
        for rel in list(plan.files) + list(plan.replace):
            sub = plan.files.get(rel)
            yield os.path.join(base, rel), ranges.merge(sub.kept_data if sub else [])
