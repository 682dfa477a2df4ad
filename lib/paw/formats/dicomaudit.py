"""The residual audit of an anonymized DICOM slide: every byte outside the pixels, explained.

Written against the allow-list (dicomtable.py), not against the scrubber (dicom.py): it reads
the delivered files with its own walker over the raw bytes (not pydicom, which would normalise
what it reads), and refuses anything the table does not explain:

- the slide folder holds exactly the files the plan names: no DICOMDIR, no clutter, no other
  file, no sub-folder;
- each file: a zero preamble, `DICM`, a file meta group of exactly the elements paw writes;
- every element at every depth, looked up by keyword where it stands in the table: a private
  element, an element the table does not name there, a value its rule does not accept (wrong
  VR, non-ASCII text, a UID paw did not issue, a value that is not the pseudonym or the fixed
  dummy, an unknown code, an ICC profile with unexplained text) is a problem;
- PixelData is the last element and ends the file; native pixel data is exactly its frames;
  encapsulated pixel data is proven frame by frame (encapsulated.py): one fragment per frame,
  offset tables pointing exactly at the frames, every frame from its codec's start marker to
  its end marker and nothing else;
- the whole codestream (every JPEG marker segment, through the entropy-coded data; every
  JPEG 2000 main and tile-part header) of the first, the last and encapsulated.SAMPLE spread
  frames per instance (all with verify.full_scan): no COM or APPn that may carry text;
- the kept instances are known to show no label (VOLUME, THUMBNAIL; OVERVIEW with keep_macro;
  the drawn LABEL exactly as paw wrote it) and form one series.

Problems name the file and the element's path (keywords and item numbers), never a value.
"""

import mmap
import os
import struct

from ..errors import FormatError
from . import dicomtable as table, encapsulated, icc, j2k, jpeg

LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
STRING_VRS = frozenset("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split())
NUMBER_SIZES = {"AT": 4, "FD": 8, "FL": 4, "OD": 8, "OF": 4, "OL": 4, "OV": 8, "SL": 4, "SS": 2,
                "SV": 8, "UL": 4, "US": 2, "UV": 8}
META = (0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013)
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
CODE_ITEM = ("CodeValue", "CodingSchemeDesignator", "CodeMeaning")


class Walk:
    """Explicit VR little-endian elements of one file, read from the raw bytes."""

    def __init__(self, data, name):
        self.data, self.name = data, name

    def element(self, at):
        """(tag, VR, value offset, value length, next offset)."""
        if at + 8 > len(self.data):
            raise FormatError("an element runs past the end of the file")
        group, number = struct.unpack_from("<HH", self.data, at)
        tag = group << 16 | number
        if tag in (ITEM, ITEM_END, SEQUENCE_END):
            (length,) = struct.unpack_from("<I", self.data, at + 4)
            return tag, "", at + 8, length, at + 8
        vr = bytes(self.data[at + 4:at + 6])
        if vr in LONG_VRS:
            (length,) = struct.unpack_from("<I", self.data, at + 8)
            start = at + 12
        else:
            (length,) = struct.unpack_from("<H", self.data, at + 6)
            start = at + 8
        if length != UNDEFINED and start + length > len(self.data):
            raise FormatError("an element's value runs past the end of the file")
        return tag, vr.decode("latin-1"), start, length, start + (0 if length == UNDEFINED else length)


class Audit:
    def __init__(self, plan, options):
        self.plan, self.options = plan, options
        self.uids = set(plan.uids)
        self.problems = []
        self.found = {}   # per instance: top-level values the role checks need
        self.depth = 0
        self.keyword, self.vr_of = _dictionary()

    def problem(self, name, where, what):
        self.problems.append(f"{name}: {where.lstrip('/') or 'file'} {what}")

    # --- one file ----------------------------------------------------------------------------

    def instance(self, file, name):
        self.found = {}
        with open(file, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 144:
                self.problem(name, "", "is too short for a DICOM file")
                return {}
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                try:
                    self.file(Walk(data, name), name)
                except FormatError as exc:
                    self.problem(name, "", f"does not parse ({exc})")
                except struct.error:
                    self.problem(name, "", "does not parse (an element is cut short)")
        return self.found

    def file(self, walk, name):
        data = walk.data
        if bytes(data[:128]) != bytes(128):
            self.problem(name, "preamble", "is not all zero")
        if bytes(data[128:132]) != b"DICM":
            self.problem(name, "", "has no DICM prefix")
            return
        at = self.meta(walk, name)
        at = self.dataset(walk, name, at, len(data), table.TABLE, "", top=True)
        if at is None:
            self.problem(name, "PixelData", "is missing")
            return
        self.pixels(walk, name, at)

    def meta(self, walk, name):
        tag, vr, start, length, at = walk.element(132)
        if tag != META[0] or vr != "UL" or length != 4:
            raise FormatError("file meta group does not start with its length")
        (group_length,) = struct.unpack_from("<I", walk.data, start)
        end, seen, values = at + group_length, [], {}
        while at < end:
            tag, vr, start, length, at = walk.element(at)
            seen.append(tag)
            values[tag] = bytes(walk.data[start:start + length])
        if at != end or tuple([META[0]] + seen) != META:
            self.problem(name, "file meta", "holds other elements than paw writes")
        text = {tag: value.rstrip(b"\0 ").decode("latin-1") for tag, value in values.items()}
        if values.get(0x00020001) != table.META_VERSION or \
                text.get(0x00020002) != table.WSI_SOP_CLASS or \
                text.get(0x00020012) != table.IMPLEMENTATION_CLASS_UID or \
                text.get(0x00020013) != table.IMPLEMENTATION_VERSION_NAME:
            self.problem(name, "file meta", "values are not paw's")
        if text.get(0x00020003) not in self.uids:
            self.problem(name, "file meta/MediaStorageSOPInstanceUID", "is not a UID paw issued")
        self.found["syntax"] = text.get(0x00020010)
        self.found["media_instance"] = text.get(0x00020003)
        if self.found["syntax"] not in table.TRANSFER_SYNTAXES:
            self.problem(name, "file meta/TransferSyntaxUID", "is not in the allow-list")
        return end

    def dataset(self, walk, name, at, end, rules, path, top=False):
        """Walk one dataset (an item) from `at` to `end`; returns where PixelData starts (top
        level) or the end of the item."""
        keyword_for_tag, dictionary_VR = self.keyword, self.vr_of
        previous = -1
        while at < end:
            element_at = at
            tag, vr, start, length, at = walk.element(at)
            if tag == ITEM_END:
                return at
            if top and tag == table.PIXEL_DATA:
                return element_at
            if tag <= previous:
                self.problem(name, path, "has elements out of order or twice")
            previous = tag
            keyword = keyword_for_tag(tag) if not (tag >> 16) & 1 else ""
            where = f"{path}/{keyword or f'({tag >> 16:04X},{tag & 0xFFFF:04X})'}"
            rule = rules.get(keyword) if keyword else None
            if rule is None:
                self.problem(name, where, "is not in the allow-list")
            elif vr not in dictionary_VR(tag).split(" or "):
                self.problem(name, where, "has another VR than the standard's")
                rule = None
            if vr == "SQ":  # walked even when it goes unexplained, to find where it ends
                at = self.sequence(walk, name, start, length, rule, where)
                continue
            if length == UNDEFINED:
                raise FormatError(f"{where.lstrip('/')}: an undefined length outside a sequence")
            raw = bytes(walk.data[start:start + length])
            if rule is not None:
                self.value(name, where, rule, vr, raw)
            if top:
                self.found[keyword] = (vr, raw)
        return None if top else at

    def sequence(self, walk, name, start, length, rule, where):
        if self.depth >= table.MAX_DEPTH:
            outermost = where.lstrip("/").split("/")[0].split("[")[0]
            raise FormatError(f"{outermost}: sequences nested deeper than {table.MAX_DEPTH} levels")
        self.depth += 1
        try:
            return self._sequence(walk, name, start, length, rule, where)
        finally:
            self.depth -= 1

    def _sequence(self, walk, name, start, length, rule, where):
        end = len(walk.data) if length == UNDEFINED else start + length
        at, number = start, 0
        while at < end:
            tag, _, item_start, item_length, at = walk.element(at)
            if tag == SEQUENCE_END:
                return at
            if tag != ITEM:
                raise FormatError(f"{where.lstrip('/')}: a sequence holds something that is not an item")
            item_end = end if item_length == UNDEFINED else item_start + item_length
            here = f"{where}[{number}]"
            if isinstance(rule, table.Items):
                at = self.dataset(walk, name, item_start, item_end, rule.table, here)
            elif isinstance(rule, table.Codes):
                at = self.code(walk, name, item_start, item_end, here)
            else:  # EMPTY, no rule, or a rule that is not a sequence: no item is explained
                if rule is not None:
                    self.problem(name, where, "holds items the allow-list does not explain")
                at = self.dataset(walk, name, item_start, item_end, {}, here)
            if item_length != UNDEFINED:
                at = item_end
            number += 1
        return at

    def code(self, walk, name, at, end, where):
        values = {}
        while at < end:
            tag, vr, start, length, at = walk.element(at)
            if tag == ITEM_END:
                break
            values[tag] = (vr, bytes(walk.data[start:start + length]))
        texts = {tag: _ascii(value) for tag, (vr, value) in values.items()}
        key = (texts.get(0x00080102), texts.get(0x00080100))
        if sorted(values) != [0x00080100, 0x00080102, 0x00080104] or None in key or \
                table.CODE_MEANINGS.get(key) != texts.get(0x00080104):
            self.problem(name, where, "is not a known code")
        return at

    def value(self, name, where, rule, vr, raw):
        if isinstance(rule, table.Numbers):
            size = NUMBER_SIZES.get(vr)
            count = len(raw) // size if size else -1
            if size is None or len(raw) % size or not rule.vm[0] <= (count if vr[0] != "O" else 1) <= rule.vm[1]:
                self.problem(name, where, "is not a number of the allow-list's shape")
            return
        if isinstance(rule, table.Icc):
            try:
                bad = icc.unexplained(raw, table.ICC_TEXTS, table.ICC_SIGNATURES)
            except FormatError:
                bad = ["structure"]
            if vr not in ("OB", "UN") or bad:
                self.problem(name, where, "is not an ICC profile the allow-list explains")
            return
        text = _ascii(raw)
        if text is None or vr not in STRING_VRS:
            self.problem(name, where, "is not ASCII text")
            return
        values = text.split("\\") if text else []
        if isinstance(rule, table.NewUid):
            ok = len(values) == 1 and values[0] in self.uids
        elif isinstance(rule, table.Pseudonym):
            ok = text in (self.plan.pseudonym, "")
        elif isinstance(rule, table.Fixed):
            ok = text in (rule.value, "")
        elif isinstance(rule, table.Empty):
            ok = raw == b""
        elif isinstance(rule, table.Text):
            ok = rule.accepts(values) or (rule.fallback is not None and values == [rule.fallback])
        else:
            ok = False
        if not ok:
            self.problem(name, where, "holds a value the allow-list does not explain")

    # --- the pixel data ----------------------------------------------------------------------

    def pixels(self, walk, name, at):
        tag, vr, start, length, end = walk.element(at)
        codec = table.TRANSFER_SYNTAXES.get(self.found.get("syntax"))
        if vr not in ("OB", "OW"):
            self.problem(name, "PixelData", "has another VR than the standard's")
        if length != UNDEFINED:
            if codec != "native" or length != self.native_length():
                self.problem(name, "PixelData", "is not exactly its frames")
            if end != len(walk.data):
                self.problem(name, "", "holds bytes after the pixel data")
            return
        try:
            table_bytes, fragments, at = encapsulated.items(walk.data, start)
        except FormatError as exc:
            self.problems.append(f"{name}: {exc}")
            return
        if at != len(walk.data):
            self.problem(name, "", "holds bytes after the pixel data")
        if codec == "native" or codec is None:
            self.problem(name, "PixelData", "is encapsulated where the transfer syntax says native")
            return
        extended = self.found.get("ExtendedOffsetTable", (None, None))[1]
        lengths = self.found.get("ExtendedOffsetTableLengths", (None, None))[1]
        try:
            encapsulated.frames(walk.data, table_bytes, fragments, self.number("NumberOfFrames"),
                                codec, extended, lengths)
        except FormatError as exc:
            self.problems.append(f"{name}: {exc}")
            return
        self.frame_headers(walk, name, fragments, codec)

    def number(self, keyword):
        vr, raw = self.found.get(keyword, ("", b""))
        try:
            return int(raw.decode("ascii").strip(" \0")) if vr in STRING_VRS else \
                struct.unpack("<H" if len(raw) == 2 else "<I", raw)[0]
        except (ValueError, struct.error, UnicodeDecodeError):
            return -1

    def native_length(self):
        length = self.number("NumberOfFrames")
        for keyword in ("Rows", "Columns", "SamplesPerPixel"):
            length *= self.number(keyword)
        length *= (self.number("BitsAllocated") + 7) // 8
        return length + length % 2

    def frame_headers(self, walk, name, frames, codec):
        """The whole codestream of the sampled frames (every frame with full_scan): every
        marker segment, wherever it stands, must be one the table explains."""
        for i in encapsulated.sample(len(frames), self.options.full_scan):
            codestream = encapsulated.stream(walk.data, frames[i])
            try:
                bad = [f"header holds {what}" for what in self.unexplained(codestream, codec)]
            except FormatError as exc:
                bad = [f"is not one whole codestream ({exc})"]
            for what in bad:
                self.problem(name, f"PixelData frame {i + 1}", what)

    @staticmethod
    def unexplained(codestream, codec):
        """Names of the segments of a whole frame that may carry text."""
        found = encapsulated.segments(codestream, codec)
        if codec == "j2k":
            names = []
            for marker, at, length in found:
                if marker == j2k.COM:
                    latin = length >= 2 and codestream[at:at + 2] == b"\x00\x01"
                    text = bytes(codestream[at + 2:at + length]).decode("latin-1")
                    if not (latin and table.CODESTREAM_COMMENT.accepts(text)):
                        names.append("COM")
                elif marker not in j2k.NUMBERS:
                    names.append(f"marker 0xFF{marker:02X}")
            return names
        extra = table.JPEG_LS_MARKERS if codec == "jpeg-ls" else frozenset()
        return ["COM" if marker == jpeg.COM else f"APP{marker - jpeg.APP0}"
                if jpeg.APP0 <= marker <= jpeg.APP15 else f"marker 0x{marker:02X}"
                for marker, at, length in found
                if not (marker in extra or jpeg.explained(marker, codestream[at:at + length]))]


def _dictionary():
    """pydicom's data dictionary (keyword and VR of a tag), cached per tag."""
    from functools import lru_cache

    from pydicom.datadict import dictionary_VR, keyword_for_tag
    return lru_cache(None)(keyword_for_tag), lru_cache(None)(dictionary_VR)


def _ascii(raw):
    """A text value as a reader shows it (trailing padding removed), or None if it holds
    anything but printable ASCII."""
    text = raw.rstrip(b"\0 ")
    if any(b < 0x20 or b > 0x7E for b in text):
        return None
    return text.decode("ascii")


# --- the slide -----------------------------------------------------------------------------------

def audit(path, plan, options):
    """Every problem found in the anonymized slide at `path` (empty when it may leave)."""
    single = not os.path.isdir(path)
    folder = os.path.dirname(path) if single else path
    check = Audit(plan, options)
    kept = [item for item in plan.instances if item["action"] in ("rewrite", "write")]
    if not single:
        expected = {item["name"] for item in kept}
        for entry in sorted(os.listdir(folder)):
            if entry not in expected:
                check.problems.append(f"{entry!r}: a file the plan does not account for is in the slide folder")
    found = {}
    for item in kept:
        file = os.path.join(folder, item["name"])
        if not os.path.isfile(file) or os.path.islink(file):
            check.problems.append(f"{item['name']}: missing")
            continue
        found[item["name"]] = check.instance(file, item["name"])
        if item["action"] == "write":
            with open(file, "rb") as fh:
                if fh.read() != bytes.fromhex(item["header"]):
                    check.problems.append(f"{item['name']} is not the drawn label paw wrote")
    for item in plan.instances:
        if item["action"] == "delete" and os.path.lexists(os.path.join(folder, item["name"])):
            check.problems.append(f"{item['name']!r} should have been removed")
    roles(check, plan, options, found)
    return check.problems


def _text(values, keyword):
    vr, raw = values.get(keyword, ("", b""))
    return (_ascii(raw) or "") if raw else ""


def _number(values, keyword):
    vr, raw = values.get(keyword, ("", b""))
    if vr in ("US", "UL") and len(raw) in (2, 4):
        return int.from_bytes(raw, "little")
    try:
        return int(_text(values, keyword) or 0)
    except ValueError:
        return 0


def roles(check, plan, options, found):
    """Only instances known to show no label, all of one series; VOLUMEs that are levels of one
    pyramid (its base among them) whose frames fit their pixel matrix."""
    drawn = {item["name"] for item in plan.instances if item["action"] == "write"}
    volumes = {}
    for name, values in found.items():
        image_type = _text(values, "ImageType").split("\\")
        flavour = image_type[2] if len(image_type) > 2 else ""
        label_flag, burned = _text(values, "SpecimenLabelInImage"), _text(values, "BurnedInAnnotation")
        says_no = label_flag == "NO" and burned != "YES"
        if name in drawn:
            ok = flavour == "LABEL"
        elif flavour == "OVERVIEW":
            ok = options.keep_macro and says_no
        elif flavour == "VOLUME":
            ok = "YES" not in (label_flag, burned)
            volumes[name] = (image_type, (_number(values, "TotalPixelMatrixColumns") or _number(values, "Columns"),
                                          _number(values, "TotalPixelMatrixRows") or _number(values, "Rows")))
        elif flavour == "THUMBNAIL":
            ok = says_no
        else:
            ok = False
        if not ok:
            check.problems.append(f"{name}: an instance not known to show no label (ImageType, "
                                  "SpecimenLabelInImage) is still in the slide")
        if values and _text(values, "SOPInstanceUID") != values.get("media_instance"):
            check.problems.append(f"{name}: SOPInstanceUID is not the file meta's")
        if values and name not in drawn:
            size = (_number(values, "TotalPixelMatrixColumns") or _number(values, "Columns"),
                    _number(values, "TotalPixelMatrixRows") or _number(values, "Rows"))
            planes = (_number(values, "TotalPixelMatrixFocalPlanes") or 1) * (_number(values, "NumberOfOpticalPaths") or 1)
            tiled_full = _text(values, "DimensionOrganizationType") == "TILED_FULL" and "ConcatenationUID" not in values
            if not table.frames_fit(_number(values, "NumberOfFrames") or 1, size,
                                    (_number(values, "Columns"), _number(values, "Rows")), planes, tiled_full):
                check.problems.append(f"{name}: NumberOfFrames does not fit the total pixel matrix and its tiles")
    if volumes:
        base = max((size for _, size in volumes.values()), key=lambda size: size[0] * size[1])
        for name, (image_type, size) in volumes.items():
            if table.level_of(size, base) is None:
                check.problems.append(f"{name}: a VOLUME that is not a level of the pyramid (its size)")
        if all(image_type[3:4] == ["RESAMPLED"] for image_type, _ in volumes.values()):
            check.problems.append("the pyramid's base level is missing (every VOLUME is RESAMPLED)")
    series = {_text(v, "SeriesInstanceUID") for v in found.values()}
    if len(series) > 1 or not series <= check.uids:
        check.problems.append("the kept instances are not one series of UIDs paw issued")
