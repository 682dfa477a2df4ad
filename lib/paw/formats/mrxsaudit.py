"""The residual audit of an anonymized MRXS slide: every member, every INI value, every byte
outside the tiles, explained.

Written against the allow-list (mrxstable.py), not against the scrubber (mrxs.py): its own parser
reads the files paw wrote, and anything the table does not explain is a problem:

- member names: the data folder holds Slidedat.ini, Index.dat and Data0000.dat ... as
  [DATAFILE] lists them, nothing else; the .mrxs file holds only zeros;
- Slidedat.ini: UTF-8 with BOM, every line a `[SECTION]` or a `KEY = VALUE`; every section is
  GENERAL, HIERARCHICAL, DATAFILE or a section [HIERARCHICAL] gives a role, under its canonical
  name; every key is in its role's table, every value accepted by its kind or empty (EMPTIED
  keys always empty); [HIERARCHICAL] holds only structure (counts, known or canonical names,
  canonical section names), no label, macro or preview is listed but the ones the plan keeps;
  SLIDE_ID is the new one;
- Index.dat: the header with the new SLIDE_ID, and every byte that is not a table, record or
  page OpenSlide reads is zero; records point inside the data files;
- data files: the header ("01.02", SLIDE_ID, file number), then only zoom-level tiles,
  slide-position records (of the expected size, valid flags), the macro with keep_macro and
  the drawn label; every other byte is zero, and so is every byte of a destroyed image's
  record (a tile sharing the label's bytes would keep them);
- tile images: the first, the last and tileimage.SAMPLE spread tiles of every zoom level (all
  with verify.full_scan) hold nothing but their pixels (no COM or APPn segment, no text chunk,
  nothing after the end of the image).

Problems name the file, section and key, never a value, nor a key or section name the table
does not know (a key may itself be an identifier).
"""

import codecs
import os
import re
import struct
import zlib

from ..sparse import first_nonzero
from .. import bundle, ranges
from ..errors import FormatError
from . import mrxstable as table, tileimage

LINE = re.compile(r"([A-Za-z0-9_]+) = (.*)")
ROLE_SECTION = {
    table.ZOOM_LEVEL: re.compile(r"LAYER_(0)_LEVEL_([0-9]+)_SECTION"),
    table.HIER_LEVEL: re.compile(r"LAYER_([1-9][0-9]*)_LEVEL_([0-9]+)_SECTION"),
    table.HIER_LAYER: re.compile(r"LAYER_([0-9]+)_SECTION"),
    table.NONHIER_LAYER: re.compile(r"NONHIERLAYER_([0-9]+)_SECTION"),
    table.NONHIER_VALUE: re.compile(r"NONHIERLAYER_([0-9]+)_LEVEL_([0-9]+)_SECTION"),
}


def parse(raw, problems):
    """{section: {key: value}} of a Slidedat.ini as paw writes it; problems for anything else."""
    if not raw.startswith(codecs.BOM_UTF8):
        problems.append("Slidedat.ini: not UTF-8 with a byte order mark")
    try:
        text = raw[len(codecs.BOM_UTF8):].decode("utf-8")
    except UnicodeDecodeError:
        problems.append("Slidedat.ini: not UTF-8")
        return {}
    sections, current = {}, None
    lines = text.split("\r\n")
    if lines[-1] != "":
        problems.append("Slidedat.ini: does not end with a line end")
    for number, line in enumerate(lines[:-1], 1):
        match = LINE.fullmatch(line)
        if re.fullmatch(r"\[[A-Za-z0-9_]+\]", line):
            if line[1:-1] in sections:
                problems.append(f"Slidedat.ini line {number}: a section twice")
            current = sections.setdefault(line[1:-1], {})
        elif match and current is not None:
            if match.group(1) in current:
                problems.append(f"Slidedat.ini line {number}: a key twice")
            current[match.group(1)] = match.group(2)
        else:
            problems.append(f"Slidedat.ini line {number}: not a section or a key")
    return sections


def _int(value):
    return int(value) if re.fullmatch(r"[0-9]{1,9}", value or "") else None


class Structure:
    """[HIERARCHICAL] and [DATAFILE] checked key by key; the roles of the other sections."""

    def __init__(self, ini, plan, options, problems):
        self.problems = problems
        hier, datafile = ini.get(table.HIERARCHICAL, {}), ini.get(table.DATAFILE, {})
        self.explained, self.roles = set(), {}
        self.hier = self.counts(hier, "HIER", 1)
        self.nonhier = self.counts(hier, "NONHIER", 0)
        self.files = _int(datafile.get("FILE_COUNT")) or 0
        for i, count in enumerate(self.hier):
            self.check(hier, f"HIER_{i}_NAME", lambda v, i=i: (v == table.ZOOM_NAME) if i == 0 else
                       (table.HIER_NAMES.accepts(v) or v == table.layer_name("Hier", i)))
            self.roles[table.section_name(table.HIER_LAYER, i)] = table.HIER_LAYER
            for j in range(count):
                self.check(hier, f"HIER_{i}_VAL_{j}", lambda v, i=i, j=j: table.ZOOM_VALUE.accepts(v)
                           if i == 0 else v == table.value_name(i, j))
                role = table.ZOOM_LEVEL if i == 0 else table.HIER_LEVEL
                if self.check(hier, f"HIER_{i}_VAL_{j}_SECTION",
                              lambda v, n=table.section_name(role, i, j): v == n, optional=i > 0):
                    self.roles[table.section_name(role, i, j)] = role
        number, self.listed = 0, {}
        for i, count in enumerate(self.nonhier):
            name = hier.get(f"NONHIER_{i}_NAME")
            self.check(hier, f"NONHIER_{i}_NAME", lambda v, i=i: table.NONHIER_NAMES.accepts(v)
                       or v == table.layer_name("NonHier", i))
            self.roles[table.section_name(table.NONHIER_LAYER, i)] = table.NONHIER_LAYER
            for j in range(count):
                value = hier.get(f"NONHIER_{i}_VAL_{j}")
                self.check(hier, f"NONHIER_{i}_VAL_{j}", lambda v, i=i, j=j: table.NONHIER_VALUES.accepts(v)
                           or v in (table.value_name(i, j), table.REMOVED_VALUE.format(number)))
                if self.check(hier, f"NONHIER_{i}_VAL_{j}_SECTION",
                              lambda v, n=table.section_name(table.NONHIER_VALUE, i, j): v == n, optional=True):
                    self.roles[table.section_name(table.NONHIER_VALUE, i, j)] = table.NONHIER_VALUE
                for axis in "XY":
                    self.check(hier, f"NONHIER_{i}_VAL_{j}_IMAGENUMBER_{axis}", _int, optional=True)
                self.listed[number] = (name, value)
                number += 1
        self.formats = {j: ini.get(table.section_name(table.ZOOM_LEVEL, 0, j), {}).get("IMAGE_FORMAT", "JPEG")
                        for j in range(self.hier[0] if self.hier else 0)}
        self.check(hier, "INDEXFILE", lambda v: v == table.INDEX_FILE)
        for key in set(hier) - self.explained:
            problems.append("Slidedat.ini [HIERARCHICAL]: a key the allow-list does not explain")
        for i in range(self.files):
            if datafile.get(f"FILE_{i}") != table.DATA_FILE.format(i):
                problems.append(f"Slidedat.ini [DATAFILE] FILE_{i}: not the canonical data file name")
        if set(datafile) - {"FILE_COUNT"} - {f"FILE_{i}" for i in range(self.files)}:
            problems.append("Slidedat.ini [DATAFILE]: a key the allow-list does not explain")
        for number, (name, value) in self.listed.items():
            kind = table.ASSOCIATED.get(value) if name == table.SCAN_DATA_LAYER else None
            if kind == "thumbnail" or (kind == "macro" and not options.keep_macro) or \
                    (kind == "label" and plan.drawn.get("record") != number):
                problems.append(f"Slidedat.ini [HIERARCHICAL]: the {kind} image is still listed")

    def counts(self, hier, prefix, low):
        total = _int(hier.get(f"{prefix}_COUNT"))
        self.explained.add(f"{prefix}_COUNT")
        if total is None or total < low:
            self.problems.append(f"Slidedat.ini [HIERARCHICAL] {prefix}_COUNT: not a count")
            return []
        found = []
        for i in range(total):
            count = _int(hier.get(f"{prefix}_{i}_COUNT"))
            self.explained.add(f"{prefix}_{i}_COUNT")
            if count is None:
                self.problems.append(f"Slidedat.ini [HIERARCHICAL] {prefix}_{i}_COUNT: not a count")
                count = 0
            found.append(count)
        return found

    def check(self, hier, key, accepts, optional=False):
        self.explained.add(key)
        if key not in hier:
            if not optional:
                self.problems.append(f"Slidedat.ini [HIERARCHICAL] {key}: missing")
            return False
        if not accepts(hier[key]):
            self.problems.append(f"Slidedat.ini [HIERARCHICAL] {key}: a value the allow-list does not explain")
            return False
        return True


def check_ini(ini, plan, options, problems):
    structure = Structure(ini, plan, options, problems)
    general = ini.get(table.GENERAL, {})
    if general.get("SLIDE_ID") != plan.slide_id:
        problems.append("Slidedat.ini [GENERAL] SLIDE_ID: not the new one")
    for name, keys in ini.items():
        if name in (table.HIERARCHICAL, table.DATAFILE):
            continue
        role = table.GENERAL if name == table.GENERAL else structure.roles.get(name)
        if role is None:
            problems.append("Slidedat.ini: a section no layer refers to")
            continue
        rules = table.ROLE_KEYS[role]
        for key, value in keys.items():
            rule = rules.get(key, "unknown")
            if rule == "unknown":
                problems.append(f"Slidedat.ini [{name}]: a key the allow-list does not explain")
            elif rule == "replaced":
                continue
            elif value and (rule is table.EMPTIED or not rule.accepts(value)):
                problems.append(f"Slidedat.ini [{name}] {key}: a value the allow-list does not explain")
    return structure


class IndexWalk:
    """Index.dat walked independently: the byte ranges of its structure, the records."""

    def __init__(self, data, slide_id, zoom_levels, records, files):
        self.data, self.files = data, files
        head = table.INDEX_VERSION + slide_id.encode("latin-1")
        if not data.startswith(head):
            raise FormatError("Index.dat does not start with the new SLIDE_ID")
        hier, nonhier = self.ints(len(head), 2)
        self.structure = [(0, len(head) + 8), (hier, 4 * zoom_levels), (nonhier, 4 * records)]
        self.tiles, self.records, self.levels = [], {}, []
        for level in range(zoom_levels):
            self.levels.append([])
            (record,) = self.ints(hier + 4 * level, 1)
            self.structure.append((record, 8))
            page, seen = self.ints(record + 4, 1)[0], set()
            while page and page not in seen and len(seen) < 1 << 20:
                seen.add(page)
                count, following = self.ints(page, 2)
                if count < 0:
                    raise FormatError("Index.dat: a negative page length")
                self.structure.append((page, 8 + 16 * count))
                for n in range(count):
                    self.tiles.append(self.item(*self.ints(page + 8 + 16 * n, 4)[1:]))
                    self.levels[-1].append(self.tiles[-1])
                page = following
        for number in range(records):
            (record,) = self.ints(nonhier + 4 * number, 1)
            page = self.ints(record + 4, 1)[0]
            self.structure += [(record, 8), (page, 28)]
            one, _, zero, zero2, offset, length, fileno = self.ints(page, 7)
            if (one, zero, zero2) != (1, 0, 0):
                raise FormatError(f"Index.dat: record {number} is not in the known layout")
            self.records[number] = self.item(offset, length, fileno)

    def ints(self, at, n):
        if at < 0 or at + 4 * n > len(self.data):
            raise FormatError("Index.dat: a pointer leads past its end")
        return struct.unpack_from(f"<{n}i", self.data, at)

    def item(self, offset, length, fileno):
        if not 0 <= fileno < self.files or offset < 0 or length < 0:
            raise FormatError("Index.dat: a record points outside the data files")
        return fileno, offset, length


def audit(path, plan, options):
    problems = []
    folder = bundle.mrxs_folder(path)
    if first_nonzero(path, ranges.merge([(0, os.path.getsize(path))])) is not None:
        problems.append(f"{os.path.basename(path)!r}: the .mrxs file still holds data")
    with open(os.path.join(folder, table.SLIDEDAT), "rb") as fh:
        raw = fh.read(table.SLIDEDAT_MAX + 1)
    if len(raw) > table.SLIDEDAT_MAX:
        return problems + ["Slidedat.ini: larger than a slide description can be"]
    ini = parse(raw, problems)
    structure = check_ini(ini, plan, options, problems)
    expected = {table.SLIDEDAT, table.INDEX_FILE} | {table.DATA_FILE.format(i) for i in range(structure.files)}
    for name in sorted(set(os.listdir(folder)) - expected):
        problems.append(f"{name!r}: a file in the MRXS data folder the plan does not account for")
    if problems or not structure.hier:
        return problems
    try:
        with open(os.path.join(folder, table.INDEX_FILE), "rb") as fh:
            index = IndexWalk(fh.read(), plan.slide_id, structure.hier[0], len(structure.listed), structure.files)
    except (OSError, FormatError) as exc:
        return problems + [f"Index.dat: {exc}"]
    stray = first_nonzero(os.path.join(folder, table.INDEX_FILE),
                          ranges.complement(ranges.merge(index.structure), len(index.data)))
    if stray is not None:
        problems.append(f"Index.dat: bytes outside its tables and records are not cleared (at {stray})")
    kept = {n: [] for n in range(structure.files)}
    for fileno, offset, length in index.tiles:
        kept[fileno].append((offset, length))
    cleared = {n: [] for n in range(structure.files)}
    for number, (name, value) in structure.listed.items():
        fileno, offset, length = index.records[number]
        kind = table.ASSOCIATED.get(value) if name == table.SCAN_DATA_LAYER else None
        if name in table.POSITIONS:
            problems += check_positions(folder, fileno, offset, length, name)
        elif not ((kind == "macro" and options.keep_macro) or plan.drawn.get("record") == number):
            cleared[fileno].append((offset, length))  # a destroyed image: every byte zero
            continue
        kept[fileno].append((offset, length))
    head = table.INDEX_VERSION + plan.slide_id.encode("latin-1")
    for fileno in range(structure.files):
        name = table.DATA_FILE.format(fileno)
        file = os.path.join(folder, name)
        with open(file, "rb") as fh:
            if fh.read(len(head) + 3) != head + f"{fileno:03d}".encode("ascii"):
                problems.append(f"{name}: the header is not the new SLIDE_ID and file number")
        referenced = ranges.merge([(0, len(head) + 3)], kept[fileno])
        stray = first_nonzero(file, ranges.complement(referenced, os.path.getsize(file)))
        if stray is not None:
            problems.append(f"{name}: bytes outside the tiles and kept records are not cleared (at {stray})")
        if first_nonzero(file, cleared[fileno]) is not None:
            problems.append(f"{name}: the bytes of a destroyed image are not cleared "
                            "(its record shares them with a tile or a kept record)")
    levels = [(structure.formats.get(level, "JPEG"), tiles) for level, tiles in enumerate(index.levels)]
    problems += [f"tile images: {line}" for line in tileimage.problems(
        [os.path.join(folder, table.DATA_FILE.format(n)) for n in range(structure.files)], levels,
        options.full_scan)]
    return problems


def check_positions(folder, fileno, offset, length, name):
    """A slide-position record: 9 bytes per camera position, a flag byte of 0 or 1 each."""
    with open(os.path.join(folder, table.DATA_FILE.format(fileno)), "rb") as fh:
        fh.seek(offset)
        data = fh.read(length)
    if name == "StitchingIntensityLayer":
        try:
            data = zlib.decompress(data)
        except zlib.error:
            return [f"{table.DATA_FILE.format(fileno)}: the slide positions do not inflate"]
    if len(data) % table.POSITION_RECORD or any(b & 0xFE for b in data[::table.POSITION_RECORD]):
        return [f"{table.DATA_FILE.format(fileno)}: the slide-position record is not positions"]
    return []
