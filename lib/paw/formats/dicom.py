"""DICOM whole-slide images (VL Whole Slide Microscopy Image Storage), needs pydicom.

A slide is a folder (bundle.py: everything below a folder that directly holds a DICOM Part 10
file) or one instance lying directly in the inbox. OpenSlide (openslide-vendor-dicom.c, libdicom)
loads every file of one directory with the SeriesInstanceUID of the file it opens; ImageType[2]
gives the role: VOLUME levels, THUMBNAIL, LABEL (`label`) and OVERVIEW (`macro`).

What paw does with a folder:
- every file is accounted for: DICOM instances, a DICOMDIR (removed: it names the patient and
  the old UIDs, and no reader of the slide needs it), clutter (bundle.CLUTTER_*: removed and
  reported); any other file, or a DICOM object that is not a whole-slide image (annotations),
  refuses the slide;
- instances that are not known to show no label are deleted: only VOLUME, and THUMBNAIL with
  SpecimenLabelInImage NO (or absent, when the thumbnail is RESAMPLED/DERIVED in the frame of
  reference of a kept VOLUME), stay (OVERVIEW too with `keep_macro`); a YES in
  SpecimenLabelInImage or BurnedInAnnotation deletes any of them;
- every kept instance is rebuilt from the typed, recursive allow-list (dicomtable.py): a new
  file meta group (no source application, no implementation name of the scanner), a zero
  preamble, the allowed elements at every depth, and the original PixelData element copied
  byte for byte up to its end - nothing after it (trailing padding, private groups);
- the kept instances must form one series; they are renamed from the pseudonym by role and
  level (`<pseudonym>_level-0.dcm`, `_thumbnail.dcm`, `_label.dcm`) directly in the slide folder
  (sub-folders of an export are flattened: OpenSlide reads one directory);
- with `label: replace` a drawn LABEL instance (uncompressed RGB) joins the series. A single-file
  slide gets none (there is no folder to put it in).

Every value that goes is searched for afterwards (verify.py), except the standard's own
vocabulary (dicomtable.VOCABULARY); a kept value that contains a value that goes is dropped too
(or the slide refused, when a reader needs it), so that the search never has to be shrunk.

Files are rewritten, not patched: the new header is written, then the original pixel data
element is copied after it (never decoded, streamed in 1 MiB blocks), and the new file takes its
name with a rename before the old one is removed. The cost is one copy of each instance.
"""

import mmap
import os
import re
import shutil
import struct
from dataclasses import dataclass, field

from .. import bundle, durable, ranges
from ..errors import FormatError, Unsupported
from . import dicomtable as table, encapsulated, icc
from .allow import printable_runs
from .base import Handler, Plan, Prepared

BLOCK = 1 << 20
SEARCHED_MIN = 4           # verify.MIN_SEARCH_LENGTH: shorter values are not searched for
UNDEFINED = 0xFFFFFFFF
ITEM, SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
STRING_VRS = frozenset("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split())
NUMBER_VRS = frozenset("AT FD FL OD OF OL OV SL SS SV UL US UV".split())
TAIL_READ = 1 << 20        # of the bytes after the pixel data (dropped), read for their texts


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise FormatError("DICOM needs pydicom: pip install -r requirements-dicom.txt") from None
    return pydicom


def detect(path):
    if os.path.isdir(path):
        return bundle.is_dicom_folder(path)
    return bundle.is_dicom(path)


@dataclass
class DicomPlan(Plan):
    """What becomes of every file of the slide, in order:

      delete   a file or clutter folder (`name`) that goes: destroyed instances, DICOMDIR, clutter
      rewrite  `source` is rebuilt as `name`: `header` (hex), then the source's bytes
               [pixel_at, pixel_end) - the PixelData element; `size` is the result's size
      write    `name` is written whole from `header` (the drawn label)
    then the emptied sub-folders (`folders`, deepest first) are removed."""
    instances: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    folders: list = field(default_factory=list)
    pseudonym: str = ""
    uids: list = field(default_factory=list)     # every UID paw issued for this slide

    def apply(self, path, undo=None):
        """Apply the plan; a replay finishes a half-applied one. With `undo` nothing of the slide
        is destroyed until the outcome is decided: a deleted file or folder, a source once its
        rebuilt instance is in place, and a file a new one takes the name of all move into
        `undo/orig/` (same relative path), and new files are built in `undo/new/` (never among
        the slide's files). A DICOM header cannot shrink in place: keeping the originals is the
        undo log. A replay takes the pixel data from the kept original."""
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        for item in self.instances:
            target = os.path.join(folder, item["name"])
            kept = _kept(undo, item["name"])
            if item["action"] == "delete":
                if kept is not None:
                    if os.path.lexists(target) and not os.path.lexists(kept):
                        _keep_original(target, kept)
                elif os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                elif os.path.lexists(target):
                    os.unlink(target)
                continue
            header = bytes.fromhex(item["header"])
            source_name = item.get("source", item["name"])
            source = os.path.join(folder, source_name)
            kept_source = _kept(undo, source_name)
            if not _already(target, header, item["size"]):
                if kept is not None and os.path.lexists(target) and not os.path.lexists(kept):
                    _keep_original(target, kept)  # the original (source == target) or a file in the way
                original = kept_source if kept_source and os.path.lexists(kept_source) else source
                partial = durable.partial_path(target) if undo is None else \
                    os.path.join(undo, "new", item["name"])
                os.makedirs(os.path.dirname(partial), 0o700, exist_ok=True)
                with open(partial, "wb") as out:
                    out.write(header)
                    if item["action"] == "rewrite":
                        with open(original, "rb") as fh:
                            fh.seek(item["pixel_at"])
                            _copy(fh, out, item["pixel_end"] - item["pixel_at"])
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(partial, target)
            if source != target and os.path.lexists(source):
                # only once the new file is in place: a replay finds one or the other
                if kept_source is None:
                    os.unlink(source)
                elif not os.path.lexists(kept_source):
                    _keep_original(source, kept_source)
        for sub in self.folders:
            if os.path.isdir(os.path.join(folder, sub)):
                os.rmdir(os.path.join(folder, sub))
        durable.fsync_dir(folder)

    def rollback(self, path, undo):
        """Every kept original back under its name (emptied sub-folders made again), every file
        paw wrote under a new name removed, nothing else touched."""
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        for item in reversed(self.instances):
            target = os.path.join(folder, item["name"])
            restored = False
            for name in dict.fromkeys((item["name"], item.get("source", item["name"]))):
                kept, place = _kept(undo, name), os.path.join(folder, name)
                if os.path.lexists(kept):
                    os.makedirs(os.path.dirname(place), exist_ok=True)
                    if os.path.isdir(kept) and not os.path.islink(kept):
                        if os.path.isdir(place) and not os.listdir(place):
                            os.rmdir(place)  # made again for a file restored into it
                        os.rename(kept, place)  # a deleted folder
                    else:
                        os.replace(kept, place)  # over paw's own file, if it was made
                    restored |= name == item["name"]
            if not restored and item["action"] != "delete" and \
                    _already(target, bytes.fromhex(item["header"]), item["size"]):
                os.unlink(target)  # paw's new file under a name that was free
            partial = os.path.join(undo, "new", item["name"])
            if os.path.lexists(partial):
                os.unlink(partial)
        durable.fsync_dir(folder)

    def to_json(self):
        return {"instances": self.instances, "removed": self.removed, "actions": self.actions,
                "folders": self.folders, "pseudonym": self.pseudonym, "uids": self.uids}

    @classmethod
    def from_json(cls, data):
        return cls(data["instances"], data["removed"], data["actions"], data.get("folders", []),
                   data.get("pseudonym", ""), data.get("uids", []))

    def summary(self):
        counts = {}
        for item in self.instances:
            counts[item["action"]] = counts.get(item["action"], 0) + 1
        done = {"rewrite": "rebuild the header of", "delete": "delete", "write": "write"}
        return "; ".join(f"{done[a]} {n} file(s)" for a, n in sorted(counts.items())) + \
            "; pixel data copied byte for byte"


def _copy(source, out, length):
    while length > 0:
        block = source.read(min(BLOCK, length))
        if not block:
            raise FormatError("an instance ended before its pixel data did")
        out.write(block)
        length -= len(block)


def _kept(undo, name):
    """Where the undo log keeps the original of `name` (None without an undo log)."""
    return None if undo is None else os.path.join(undo, "orig", name)


def _keep_original(target, kept):
    """Move an original file or folder into the undo folder, durably on both sides."""
    os.makedirs(os.path.dirname(kept), 0o700, exist_ok=True)
    os.rename(target, kept)
    durable.fsync_dir(os.path.dirname(kept))
    durable.fsync_dir(os.path.dirname(target))


def _already(target, header, size):
    if not os.path.isfile(target) or os.path.getsize(target) != size:
        return False
    with open(target, "rb") as fh:
        return fh.read(len(header)) == header


# --- reading and rebuilding the instances (raw explicit VR little endian) ----------------------

VRS = frozenset("AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM "
                "UC UI UL UN UR US UT UV".split())
LONG_VRS = frozenset("OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
ITEM_END = 0xFFFEE00D
SPECIFIC_CHARACTER_SET = 0x00080005
REFERENCED_SOP_INSTANCE_UID = 0x00081155
META_GROUP = 0x0002


def _element(data, at, implicit=None):
    """(tag, VR, value offset, value length, offset after the value) of the element at `at`
    (item and delimiter tags have no VR). With `implicit` (a tag -> VR function) the dataset
    is Implicit VR Little Endian: no VR in the bytes, a 4-byte length, the VR from the
    dictionary."""
    if at + 8 > len(data):
        raise FormatError("an element runs past the end of the header")
    group, number = struct.unpack_from("<HH", data, at)
    tag = group << 16 | number
    if group == 0xFFFE:
        (length,) = struct.unpack_from("<I", data, at + 4)
        return tag, "", at + 8, length, at + 8
    if implicit is not None:
        (length,) = struct.unpack_from("<I", data, at + 4)
        vr, start = implicit(tag), at + 8
        if length == UNDEFINED and vr not in ("SQ", "UN"):
            raise FormatError(f"element ({group:04X},{number:04X}) has an undefined length")
        if length == UNDEFINED:
            return tag, "SQ", start, length, start
    else:
        vr = bytes(data[at + 4:at + 6]).decode("latin-1")
        if vr not in VRS:
            raise FormatError(f"element ({group:04X},{number:04X}) has no valid VR (not explicit VR little endian)")
        if vr in LONG_VRS:
            if at + 12 > len(data):
                raise FormatError("an element runs past the end of the header")
            (length,) = struct.unpack_from("<I", data, at + 8)
            start = at + 12
        else:
            (length,) = struct.unpack_from("<H", data, at + 6)
            start = at + 8
    if length == UNDEFINED:
        return tag, vr, start, length, start
    if start + length > len(data) and tag != table.PIXEL_DATA:  # _pixel_end says it for the pixels
        raise FormatError(f"element ({group:04X},{number:04X}) runs past the end of the file")
    return tag, vr, start, length, start + length


def _encode(tag, vr, value):
    """One element, explicit VR little endian, padded to an even length."""
    if len(value) % 2:
        value += b"\0" if vr in ("UI", "OB", "UN") else b" "
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii")
    if vr in LONG_VRS:
        return head + b"\0\0" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def _sequence(tag, items):
    """A sequence of undefined length whose items (bytes of their elements) have undefined length."""
    body = b"".join(b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + item + b"\xfe\xff\x0d\xe0\0\0\0\0"
                    for item in items)
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"SQ\0\0\xff\xff\xff\xff" + body + \
        b"\xfe\xff\xdd\xe0\0\0\0\0"


def _texts(raw):
    """The values of a text element as a reader shows them, or None if not plain ASCII."""
    try:
        text = bytes(raw).rstrip(b"\0 ").decode("ascii")
    except UnicodeDecodeError:
        return None
    if any(not 0x20 <= ord(c) <= 0x7E for c in text):
        return None
    return [v.strip() for v in text.split("\\")] if text else []


def _keywords():
    """pydicom's data dictionary, cached: a header repeats the same few tags 100,000 times."""
    from functools import lru_cache

    from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

    def vr_of(tag):
        try:
            return dictionary_VR(tag)
        except KeyError:
            return ""
    return lru_cache(None)(keyword_for_tag), lru_cache(None)(vr_of), lru_cache(None)(tag_for_keyword)


@dataclass
class Instance:
    """What the plan needs to know of one DICOM file before rebuilding it."""
    name: str
    kind: str = "wsi"            # wsi, dicomdir
    flavour: str = ""
    image_type: tuple = ()
    label_in_image: str = ""
    burned_in: str = ""
    frame_of_reference: str = ""
    series: str = ""
    size: tuple = (0, 0)         # TotalPixelMatrixColumns/Rows (Columns/Rows without them)
    tile: tuple = (0, 0)         # Columns/Rows: one frame
    planes: int = 1              # TotalPixelMatrixFocalPlanes x NumberOfOpticalPaths
    organization: str = ""       # DimensionOrganizationType
    instance_uid: str = ""
    sources: frozenset = frozenset()   # SOPInstanceUIDs it says it was derived from
    frames_fit: bool = True      # NumberOfFrames fits the pixel matrix and tiles (dicomtable.frames_fit)
    part: int = 0                # InConcatenationNumber
    concatenated: bool = False
    frames: int = 1
    syntax: str = ""
    pixel_at: int = 0
    pixel_end: int = 0
    converted: bool = False      # Implicit VR Little Endian, rebuilt as explicit
    removed: list = field(default_factory=list)


class Scrub:
    """Rebuilds the bytes of a dataset from dicomtable.TABLE, element by element, at every depth.
    `removed` collects every text that does not stay; `dropped` names what went (for people:
    the ledger's removed column), never a value; `top` holds the source's top-level values (the
    plan decides roles from them)."""

    def __init__(self, pseudonym, uids, searched, strict=True):
        self.pseudonym = pseudonym
        self.uids = uids             # old UID -> new UID, shared by every instance of the slide
        self.searched = searched     # values that go (>= SEARCHED_MIN): a kept value holding one goes too
        self.strict = strict         # refuse when a reader's element must go (off while surveying)
        self.removed, self.dropped, self.top = [], {}, {}
        self.encodings = ["iso8859"]
        self.keyword, self.vr_of, self.tag_of = _keywords()
        self.implicit = None         # Implicit VR Little Endian: tag -> VR (the header is rebuilt explicit)
        self.depth = 0               # sequences nested around the element being read
        self.sources = set()         # SOP instances this one says it was derived from

    def element(self, data, at):
        return _element(data, at, self.implicit)

    def implicit_vr(self, tag):
        """The VR of an element of an Implicit VR dataset: the dictionary's (the first where it
        allows two: US for "US or SS"), UN for private and unknown tags. PixelData gets its
        own explicit header (_walk)."""
        if (tag >> 16) & 1:
            return "UN"
        vr = self.vr_of(tag).split(" or ")[0]
        return vr if vr in VRS else "UN"

    # what goes --------------------------------------------------------------------------------

    def strings(self, vr, raw):
        """The texts of a value that goes: decoded as the dataset's character set says, or
        printable runs of a binary value."""
        if vr in STRING_VRS:
            text = self.decode(bytes(raw))
            return [v.strip(" \0") for v in text.split("\\") if v.strip(" \0")]
        if vr in ("OB", "OW", "UN", "OD", "OF", "OL", "OV", "UV", "SV"):
            return [text.strip() for _, text in printable_runs(bytes(raw))]
        return []

    def went(self, what):
        """Note what went (item numbers left out: 100,000 frames make one line)."""
        self.dropped[re.sub(r"\[\d+\]", "", what).lstrip("/")] = None

    def decode(self, raw):
        """Text as the dataset's character set says (one Python codec; ISO 2022 code
        extensions through pydicom); bytes as Latin-1 when the set is unknown or broken."""
        if len(self.encodings) == 1:
            try:
                return raw.decode(self.encodings[0], "replace")
            except LookupError:
                return raw.decode("latin-1")
        import warnings
        from pydicom.charset import decode_bytes
        with warnings.catch_warnings():  # pydicom warns about odd escape sequences: not ours to print
            warnings.simplefilter("ignore")
            try:
                return decode_bytes(raw, self.encodings, set())
            except Exception:  # noqa: BLE001 - a broken code extension: bytes as Latin-1
                return raw.decode("latin-1")

    def holds_removed(self, values):
        return any(needle in value for value in values for needle in self.searched)

    def new_uid(self, old=None):
        """The UID for `old` (the same in every instance), or a fresh one; never one that
        contains a removed value."""
        from pydicom.uid import generate_uid
        if old is None or old not in self.uids:
            uid = generate_uid(prefix=None)
            while self.holds_removed([uid]):
                uid = generate_uid(prefix=None)
            self.uids[uid if old is None else old] = uid
            return uid
        return self.uids[old]

    # walking ----------------------------------------------------------------------------------

    def dataset(self, data, at, end, rules, path, top=False, quiet=False):
        """Rebuild the elements from `at` to `end` or to an item delimiter: (bytes, where the walk
        stopped). At the top level it stops at PixelData; without one, the position is None.
        `quiet`: inside something that goes whole (only its texts are collected)."""
        out = {}
        while at < end:
            tag, vr, start, length, after = self.element(data, at)
            if tag == ITEM_END:
                return self.join(out, rules, path), after
            if top and tag == table.PIXEL_DATA:
                return self.join(out, rules, path), at
            private = bool((tag >> 16) & 1)
            keyword = "" if private else self.keyword(tag)
            where = f"{path}/{keyword or f'({tag >> 16:04X},{tag & 0xFFFF:04X})'}"
            if tag in out:
                raise FormatError(f"{where.lstrip('/')}: the element is there twice")
            rule = rules.get(keyword) if keyword else None
            if rule is not None and vr not in self.vr_of(tag).split(" or "):
                rule = None  # another VR than the standard's: not what the rule describes
            if top:
                self.top[keyword or tag] = (vr, b"" if vr == "SQ" else bytes(data[start:after]))
                if tag == SPECIFIC_CHARACTER_SET:
                    self.charset(data[start:after])
            if vr == "SQ":
                built, at = self.sequence(tag, data, start, length, rule, where, quiet)
            elif length == UNDEFINED:
                raise FormatError(f"{where.lstrip('/')}: an undefined length where a value must be")
            else:
                built, at = self.value(tag, vr, data[start:after], rule, where, quiet or private), after
                if built is None and private and not quiet:
                    self.went("private elements removed")
            if built is not None:
                out[tag] = built
        return self.join(out, rules, path), None if top else at

    def charset(self, raw):
        import warnings
        from pydicom.charset import convert_encodings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.encodings = convert_encodings(bytes(raw).decode("ascii").strip(" \0").split("\\"))
            except Exception:  # noqa: BLE001 - an unknown character set: texts searched as Latin-1
                self.encodings = ["latin_1"]

    def join(self, out, rules, path):
        for keyword, rule in rules.items():
            if rule.always:
                tag = self.tag_of(keyword)
                if tag not in out:
                    out[tag] = self.fixed(tag, rule, f"{path}/{keyword}")
        return b"".join(out[tag] for tag in sorted(out))

    def fixed(self, tag, rule, where):
        value = self.pseudonym if isinstance(rule, table.Pseudonym) else rule.value
        if self.holds_removed([value]):
            value = ""
            self.went(f"{where} emptied (it holds a removed value)")
        return _encode(tag, self.vr_of(tag).split(" or ")[0], value.encode("ascii"))

    def value(self, tag, vr, raw, rule, where, quiet):
        """The rebuilt element for one value that is not a sequence, or None when it goes."""
        old = self.strings(vr, raw)
        if tag == REFERENCED_SOP_INSTANCE_UID and "SourceImageSequence" in where:
            self.sources.update(old)  # a derivation reference: which image this one was made from
        if rule is None:
            self.removed.extend(old)
            if not quiet:
                self.went(f"{where} removed")
            return None
        if isinstance(rule, table.Numbers):
            size = {"AT": 4, "FD": 8, "FL": 4, "SL": 4, "SS": 2, "UL": 4, "US": 2}.get(vr, 8)
            count = len(raw) // size if vr[0] != "O" else 1
            if vr in NUMBER_VRS and len(raw) % size == 0 and rule.vm[0] <= count <= rule.vm[1]:
                return _encode(tag, vr, bytes(raw))
        elif isinstance(rule, table.Icc):
            try:
                problems = icc.unexplained(bytes(raw), table.ICC_TEXTS, table.ICC_SIGNATURES)
            except FormatError:
                problems = ["structure"]
            if not problems and not self.holds_removed(old):
                return _encode(tag, vr, bytes(raw))
        elif isinstance(rule, table.NewUid):
            self.removed.extend(old)
            return _encode(tag, "UI", self.new_uid(old[0]).encode("ascii")) if old else None
        elif isinstance(rule, (table.Pseudonym, table.Fixed)):
            new = self.pseudonym if isinstance(rule, table.Pseudonym) else rule.value
            if [v for v in old if v != new]:
                self.removed.extend(old)
                self.went(f"{where} replaced")
            return self.fixed(tag, rule, where)
        elif isinstance(rule, table.Empty):
            if old:
                self.removed.extend(old)
                self.went(f"{where} emptied")
            return _encode(tag, vr, b"")
        else:
            values = _texts(raw)
            if values is not None and rule.accepts(values) and not self.holds_removed(values):
                return _encode(tag, vr, "\\".join(values).encode("ascii"))
            if rule.fallback is not None and not self.holds_removed([rule.fallback]):
                self.removed.extend(old)
                self.went(f"{where} set to {rule.fallback}")
                return _encode(tag, vr, rule.fallback.encode("ascii"))
        if rule.required and self.strict:
            raise FormatError(f"{where.lstrip('/')}: value not in the allow-list, and a reader needs it")
        self.removed.extend(old)
        if not quiet:
            self.went(f"{where} removed")
        return None

    def items(self, data, start, length, where, each):
        """Call each(item start, item end, path) for every item of a sequence (it returns where
        the item's walk stopped); returns where the sequence ends."""
        end = len(data) if length == UNDEFINED else start + length
        at, number = start, 0
        while at < end:
            tag, _, item_start, item_length, at = self.element(data, at)
            if tag == SEQUENCE_END:
                return at
            if tag != ITEM:
                raise FormatError(f"{where.lstrip('/')}: a sequence holds something that is not an item")
            item_end = end if item_length == UNDEFINED else item_start + item_length
            after = each(item_start, item_end, f"{where}[{number}]")
            at = after if item_length == UNDEFINED else item_end
            number += 1
        if length == UNDEFINED:
            raise FormatError(f"{where.lstrip('/')}: the sequence has no end")
        return end

    def sequence(self, tag, data, start, length, rule, where, quiet):
        """(the rebuilt sequence or None, where it ends): items by the rule's table, code items
        against the known codes; an EMPTY rule's items and a sequence without a rule go."""
        if self.depth >= table.MAX_DEPTH:
            outermost = where.lstrip("/").split("/")[0].split("[")[0]
            raise FormatError(f"{outermost}: sequences nested deeper than {table.MAX_DEPTH} levels")
        self.depth += 1
        try:
            return self._sequence(tag, data, start, length, rule, where, quiet)
        finally:
            self.depth -= 1

    def _sequence(self, tag, data, start, length, rule, where, quiet):
        built = []
        if isinstance(rule, table.Items):
            def each(item_start, item_end, here):
                body, after = self.dataset(data, item_start, item_end, rule.table, here, quiet=quiet)
                built.append(body)
                return after
        elif isinstance(rule, table.Codes):
            def each(item_start, item_end, here):
                code, after = self.code(data, item_start, item_end, here)
                if code is not None:
                    built.append(code)
                return after
        else:
            def each(item_start, item_end, here):
                built.append(here)
                return self.dataset(data, item_start, item_end, {}, here, quiet=True)[1]
        at = self.items(data, start, length, where, each)
        if isinstance(rule, (table.Items, table.Codes)):
            return _sequence(tag, built), at
        if isinstance(rule, table.Empty):
            if built and not quiet:
                self.went(f"{where} emptied")
            return _sequence(tag, []), at
        if not quiet:
            self.went(f"{where} removed")
        return None, at

    def code(self, data, at, end, where):
        """A code item: (its rebuilt bytes, or None when the code is not a known one; where it ends)."""
        values, texts = {}, []
        while at < end:
            tag, vr, start, length, after = self.element(data, at)
            if tag == ITEM_END:
                at = after
                break
            if vr == "SQ":
                before = len(self.removed)
                at = self.sequence(tag, data, start, length, None, where, quiet=True)[1]
                texts += self.removed[before:]
                del self.removed[before:]
                continue
            values[tag] = _texts(data[start:after])
            texts += self.strings(vr, data[start:after])
            at = after
        key = (values.get(0x00080102) or [""])[0], (values.get(0x00080100) or [""])[0]
        meaning = table.CODE_MEANINGS.get(key)
        if meaning is None or self.holds_removed([*key, meaning]):
            self.removed.extend(texts)
            self.went(f"{where}: an unknown code removed")
            return None, at
        self.removed.extend(t for t in texts if t not in (*key, meaning))
        return (_encode(0x00080100, "SH", key[1].encode("ascii")) + _encode(0x00080102, "SH", key[0].encode("ascii"))
                + _encode(0x00080104, "LO", meaning.encode("ascii"))), at


def _meta(data, name):
    """The file meta elements {tag: (VR, raw value)} and where the dataset starts."""
    if len(data) < 132 or bytes(data[128:132]) != b"DICM":
        raise FormatError(f"{name}: not a DICOM Part 10 file")
    found, at = {}, 132
    while at + 8 <= len(data) and struct.unpack_from("<H", data, at)[0] == META_GROUP:
        tag, vr, start, length, after = _element(data, at)
        if vr == "SQ" or length == UNDEFINED:
            raise FormatError(f"{name}: the file meta group holds a sequence")
        found[tag] = (vr, bytes(data[start:after]))
        at = after
    return found, at


def _meta_bytes(instance_uid, syntax):
    """A file meta group built from nothing (PS3.10 Table 7.1-1), with its group length."""
    body = (_encode(0x00020001, "OB", table.META_VERSION)
            + _encode(0x00020002, "UI", table.WSI_SOP_CLASS.encode("ascii"))
            + _encode(0x00020003, "UI", instance_uid.encode("ascii"))
            + _encode(0x00020010, "UI", syntax.encode("ascii"))
            + _encode(0x00020012, "UI", table.IMPLEMENTATION_CLASS_UID.encode("ascii"))
            + _encode(0x00020013, "SH", table.IMPLEMENTATION_VERSION_NAME.encode("ascii")))
    return bytes(128) + b"DICM" + _encode(0x00020000, "UL", struct.pack("<I", len(body))) + body


def _top_text(scrub, keyword):
    vr, raw = scrub.top.get(keyword, ("", b""))
    values = _texts(raw) if vr in STRING_VRS else None
    return values or []


def _top_number(scrub, keyword):
    vr, raw = scrub.top.get(keyword, ("", b""))
    if vr in ("US", "UL") and len(raw) in (2, 4):
        return int.from_bytes(raw, "little")
    values = _texts(raw) if vr in STRING_VRS else None
    try:
        return int(values[0]) if values else 0
    except ValueError:
        return 0


DISTINCT_LETTERS = 4  # a non-ASCII run needs this many different characters to count as text


def _dropped_texts(data):
    """The text runs of bytes paw drops (the preamble, whatever follows the pixel data) that the
    value search then looks for: runs that read as text. A run of marker bytes that happens to be
    Latin-1 letters (FF FF FF FF FE FF, a sequence of undefined length: 'ÿÿÿÿþÿ') is no text and
    would match paw's own rebuilt header."""
    texts = []
    for _, text in printable_runs(bytes(data)):
        text = text.strip()
        if any(c.isascii() and c.isalnum() for c in text) or len(set(text)) >= DISTINCT_LETTERS:
            texts.append(text)
    return texts


def _pixel_end(data, name, at, scrub, codec, prove):
    """(where the PixelData value starts, where the element ends): its explicit length, or
    (encapsulated) the end of the sequence delimiter after the last fragment, once the
    fragments are proven to be exactly the frames (encapsulated.frames). Whatever follows goes."""
    tag, vr, start, length, after = scrub.element(data, at)
    if vr not in ("OB", "OW"):
        raise FormatError(f"{name}: DICOM instance without pixel data")
    if length != UNDEFINED:
        if after > len(data):
            raise FormatError(f"{name}: the pixel data runs past the end of the file")
        if codec != "native":
            raise FormatError(f"{name}: PixelData is not encapsulated where the transfer syntax says it is")
        return start, after
    if codec == "native":
        raise FormatError(f"{name}: PixelData is encapsulated where the transfer syntax says native")
    bot, fragments, end = encapsulated.items(data, start)
    if prove:
        encapsulated.frames(data, bot, fragments, _top_number(scrub, "NumberOfFrames") or 1, codec,
                            _top_raw(scrub, "ExtendedOffsetTable"), _top_raw(scrub, "ExtendedOffsetTableLengths"))
    return start, end


def _top_raw(scrub, keyword):
    """A top-level binary value as it stands, or None when the element is absent."""
    return scrub.top[keyword][1] if keyword in scrub.top else None


def _walk(folder, rel, scrub, prove=True):
    """Rebuild one file's dataset with `scrub`: (file meta, dataset bytes, the span of the
    source copied after the header, the PixelData element header written before that span
    (empty: the span starts with the element's own)). The file is memory-mapped: only the
    header and the offset items are read. `prove`: the frame layout of encapsulated pixel data
    is proven (encapsulated.frames) - once per instance, when it is surveyed."""
    scrub.top, scrub.encodings = {}, ["iso8859"]
    with open(os.path.join(folder, rel), "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 132:
            raise FormatError(f"{rel}: not a DICOM Part 10 file")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                meta, at = _meta(data, rel)
                for vr, raw in meta.values():
                    scrub.removed.extend(scrub.strings(vr, raw))
                scrub.removed.extend(_dropped_texts(data[:128]))
                syntax = (_texts(meta.get(0x00020010, ("", b""))[1]) or [""])[0]
                sop_class = (_texts(meta.get(0x00020002, ("", b""))[1]) or [""])[0]
                if sop_class == table.DICOMDIR_SOP_CLASS:
                    scrub.dataset(data, at, len(data), {}, "", quiet=True)
                    return meta, None, (0, 0), b""
                if sop_class != table.WSI_SOP_CLASS:
                    raise FormatError(f"{rel}: not a whole-slide image instance "
                                      "(paw does not anonymize other DICOM objects)")
                implicit = syntax == table.IMPLICIT_VR_LITTLE_ENDIAN
                if syntax not in table.TRANSFER_SYNTAXES and not implicit:
                    raise FormatError(f"{rel}: transfer syntax not supported (TransferSyntaxUID)")
                scrub.implicit = scrub.implicit_vr if implicit else None
                codec = "native" if implicit else table.TRANSFER_SYNTAXES[syntax]
                body, element_at = scrub.dataset(data, at, len(data), table.TABLE, "", top=True)
                if element_at is None:
                    raise FormatError(f"{rel}: DICOM instance without pixel data")
                value_at, pixel_end = _pixel_end(data, rel, element_at, scrub, codec, prove)
                scrub.removed.extend(_dropped_texts(data[pixel_end:pixel_end + TAIL_READ]))
                if not implicit:  # the element is copied whole, its header included
                    return meta, body, (element_at, pixel_end), b""
                # Implicit VR: the header is rebuilt explicit, so is the PixelData element's own
                # (the pixel bytes are the same in both: little endian, OB for 8-bit samples).
                vr = b"OW" if _top_number(scrub, "BitsAllocated") > 8 else b"OB"
                head = struct.pack("<HH", 0x7FE0, 0x0010) + vr + b"\0\0" + struct.pack("<I", pixel_end - value_at)
                return meta, body, (value_at, pixel_end), head
            except struct.error:
                raise FormatError(f"{rel}: an element is cut short") from None
            except FormatError as exc:
                message = str(exc)
                raise FormatError(message if message.startswith(f"{rel}:") else f"{rel}: {message}") from None


def _survey(folder, rel):
    """Read one file: what it is, its role, its pixel data span, and what scrubbing removes."""
    scrub = Scrub("", {}, (), strict=False)
    meta, body, (pixel_at, pixel_end), pixel_head = _walk(folder, rel, scrub)
    found = Instance(rel, removed=scrub.removed)
    if body is None:
        found.kind = "dicomdir"
        return found
    if _top_text(scrub, "SOPClassUID") != [table.WSI_SOP_CLASS]:
        raise FormatError(f"{rel}: not a whole-slide image instance (paw does not anonymize other DICOM objects)")
    found.syntax = (_texts(meta.get(0x00020010, ("", b""))[1]) or [""])[0]
    if found.syntax == table.IMPLICIT_VR_LITTLE_ENDIAN:
        found.syntax = table.EXPLICIT_VR_LITTLE_ENDIAN
        found.converted = True
    found.pixel_at, found.pixel_end = pixel_at, pixel_end
    found.image_type = tuple(_top_text(scrub, "ImageType"))
    found.flavour = found.image_type[2] if len(found.image_type) > 2 else ""
    found.label_in_image = "".join(_top_text(scrub, "SpecimenLabelInImage"))
    found.burned_in = "".join(_top_text(scrub, "BurnedInAnnotation"))
    found.frame_of_reference = "".join(_top_text(scrub, "FrameOfReferenceUID"))
    found.series = "".join(_top_text(scrub, "SeriesInstanceUID"))
    found.size = (_top_number(scrub, "TotalPixelMatrixColumns") or _top_number(scrub, "Columns"),
                  _top_number(scrub, "TotalPixelMatrixRows") or _top_number(scrub, "Rows"))
    found.part = _top_number(scrub, "InConcatenationNumber")
    found.concatenated = "ConcatenationUID" in scrub.top
    found.frames = _top_number(scrub, "NumberOfFrames") or 1
    found.tile = (_top_number(scrub, "Columns"), _top_number(scrub, "Rows"))
    found.planes = (_top_number(scrub, "TotalPixelMatrixFocalPlanes") or 1) * \
        (_top_number(scrub, "NumberOfOpticalPaths") or 1)
    found.organization = "".join(_top_text(scrub, "DimensionOrganizationType"))
    found.instance_uid = "".join(_top_text(scrub, "SOPInstanceUID"))
    found.sources = frozenset(scrub.sources)
    found.frames_fit = table.frames_fit(found.frames, found.size, found.tile, found.planes,
                                        found.organization == "TILED_FULL" and not found.concatenated)
    if table.TRANSFER_SYNTAXES[found.syntax] == "native":
        expected = found.frames
        for keyword in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated"):
            if scrub.top.get(keyword, ("",))[0] != "US":
                raise FormatError(f"{rel}: {keyword} is not a number")
            expected *= _top_number(scrub, keyword) if keyword != "BitsAllocated" else \
                (_top_number(scrub, keyword) + 7) // 8
        if pixel_end - pixel_at - (0 if pixel_head else 12) != expected + expected % 2:
            raise FormatError(f"{rel}: the pixel data length does not match its frames")
    return found


# --- the plan --------------------------------------------------------------------------------

SHOWS_LABEL = "YES"
LOOSE = "DICOM instances of one slide must be in a folder of their own"


def _shows_label(instance):
    return SHOWS_LABEL in (instance.label_in_image, instance.burned_in)


def _flavour_rule(instance, options):
    """What the instance's own header allows: None (may stay) or why it goes. Only what is
    known to show no label may stay: a VOLUME that does not say it shows it, a THUMBNAIL
    saying SpecimenLabelInImage NO (the flag is Type 1: a thumbnail without it says nothing,
    and one with the pyramid's shape can still be a photo of the label), an OVERVIEW saying NO
    with keep_macro (a scanner that keeps the label out of its overview says so)."""
    flavour = instance.flavour
    if flavour == "LABEL":
        return "label instance deleted"
    if flavour not in ("VOLUME", "THUMBNAIL", "OVERVIEW"):
        return "instance of another flavour deleted (ImageType)"
    if _shows_label(instance):
        name = "macro (overview)" if flavour == "OVERVIEW" else flavour.lower()
        return f"{name} instance deleted (SpecimenLabelInImage or BurnedInAnnotation YES)"
    if flavour == "OVERVIEW" and not options.keep_macro:
        return "macro (overview) instance deleted"
    if flavour == "VOLUME" or instance.label_in_image == "NO":
        return None
    if flavour == "OVERVIEW":
        return "macro (overview) instance deleted (keep_macro keeps it only when SpecimenLabelInImage says NO)"
    return "thumbnail instance deleted (SpecimenLabelInImage absent: not known to show no label)"


def _roles(survey, options):
    """{instance name: None (stays) or why it goes} for the whole slide, by these rules in
    order; FormatError where the slide cannot be delivered whole:

    1. each instance's own header (_flavour_rule);
    2. a pyramid (the VOLUMEs of one FrameOfReferenceUID) one of whose levels says it shows the
       label goes whole, with the thumbnails of that frame of reference (a level is resampled
       from the others: they all show what one shows); levels that disagree about it refuse
       the slide, since one of them is wrong;
    3. an instance derived (SourceImageSequence) from one that goes for showing the label goes;
    4. a VOLUME whose size is not the base level's halved n times (dicomtable.level_of) is not
       a level of the pyramid (a photo of the label typed VOLUME has another shape): it goes;
    5. if every VOLUME left is a RESAMPLED one, the level they were made from is missing (a
       series split over folders, or still arriving): the slide is refused."""
    why = {i.name: _flavour_rule(i, options) for i in survey}
    pyramids = {}
    for i in survey:
        if i.flavour == "VOLUME":
            pyramids.setdefault(i.frame_of_reference, []).append(i)
    tainted = {i.frame_of_reference for i in survey if i.flavour == "VOLUME" and _shows_label(i)}
    for frame in tainted:
        if not all(_shows_label(i) for i in pyramids[frame]):
            raise Unsupported("refused: the levels of the pyramid disagree whether they show the label "
                              "(SpecimenLabelInImage or BurnedInAnnotation YES on some only)")
        for i in survey:
            if i.flavour == "THUMBNAIL" and i.frame_of_reference == frame and why[i.name] is None:
                why[i.name] = "thumbnail instance deleted (made from a pyramid that shows the label)"
    labelled = {i.instance_uid for i in survey if why[i.name] and i.flavour in ("LABEL", "OVERVIEW")
                or _shows_label(i)}
    for i in survey:
        if why[i.name] is None and i.sources & labelled:
            why[i.name] = f"{i.flavour.lower()} instance deleted (made from an image that shows the label)"
    volumes = [i for i in survey if i.flavour == "VOLUME" and why[i.name] is None]
    if volumes:
        base = max((i.size for i in volumes), key=lambda size: size[0] * size[1])
        for i in volumes:
            if table.level_of(i.size, base) is None:
                why[i.name] = "volume instance deleted (not a level of the pyramid: its size is not the base level's halved)"
        volumes = [i for i in volumes if why[i.name] is None]
        if all(i.image_type[3:4] == ("RESAMPLED",) for i in volumes):
            raise Unsupported("refused: the pyramid's base level is missing (every VOLUME instance is "
                              f"a RESAMPLED level): {LOOSE}, all of them")
    return why


def _names(kept, pseudonym, taken):
    """New names by role and level: levels by size (largest first), parts by concatenation."""
    stem = re.sub(r"[^A-Za-z0-9.-]+", "_", pseudonym).strip("._") or "slide"
    sizes = sorted({i.size for i in kept if i.flavour == "VOLUME"}, key=lambda s: -s[0] * s[1])
    roles = {}
    for instance in sorted(kept, key=lambda i: (i.part, i.name)):
        role = f"level-{sizes.index(instance.size)}" if instance.flavour == "VOLUME" else instance.flavour.lower()
        roles.setdefault(role, []).append(instance)
    names, used = {}, set(taken)
    for role, group in sorted(roles.items()):
        for n, instance in enumerate(group, 1):
            name = f"{stem}_{role}{f'-{n}' if len(group) > 1 else ''}.dcm"
            while name in used and name != instance.name:
                name = name[:-4] + "-paw.dcm"
            used.add(name)
            names[instance.name] = name
    return names


def _prepare(path, options, pseudonym, label):
    _pydicom()
    single = not os.path.isdir(path)
    folder = os.path.dirname(path) if single else path
    plan, found = DicomPlan(pseudonym=pseudonym), {}
    if single:
        files = [os.path.basename(path)]
    else:
        contents = bundle.dicom_contents(path)
        if contents.strays:
            raise Unsupported(f"refused: {contents.strays[0]!r}: a file that is not part of a DICOM slide "
                              "(only instances, a DICOMDIR and system clutter may be in its folder)")
        files = contents.members
        for rel, what in contents.clutter:
            plan.instances.append({"action": "delete", "name": rel})
            plan.actions.append(f"{what} removed")
        plan.folders = contents.folders
    survey = [_survey(folder, rel) for rel in files]
    images = [i for i in survey if i.kind != "dicomdir"]
    roles = _roles(images, options)
    kept = []
    for instance in survey:
        found_as = "dicomdir" if instance.kind == "dicomdir" else instance.flavour.lower() or "unknown"
        found[found_as] = found.get(found_as, 0) + 1
        why = "DICOMDIR removed (it names the patient and the old UIDs)" if instance.kind == "dicomdir" \
            else roles[instance.name]
        if why:
            plan.instances.append({"action": "delete", "name": instance.name, "role": instance.flavour})
            plan.actions.append(why)
        else:
            kept.append(instance)
    if not any(i.flavour == "VOLUME" for i in kept):
        if single:
            what = survey[0].flavour.lower() or "image of no known flavour"
            raise Unsupported(f"refused: a single {what} instance is not a slide by itself: {LOOSE}")
        raise Unsupported("refused: nothing would be left of the slide (no VOLUME instance known to show no label)")
    for instance in kept:
        if not instance.frames_fit:
            raise Unsupported(f"refused: {instance.name}: NumberOfFrames does not fit the total pixel matrix and its tiles")
    if any(i.converted for i in kept):
        plan.actions.append("Implicit VR header rebuilt as Explicit VR Little Endian (pixel data unchanged)")
    if len({i.series for i in kept}) > 1:
        raise Unsupported(f"refused: the folder holds instances of {len({i.series for i in kept})} series: "
                          "put each slide in a folder of its own")
    if single and any(i.concatenated for i in kept):
        raise Unsupported(f"refused: a single instance of a concatenation: the other parts are missing ({LOOSE})")

    searched = _searched(i.removed for i in survey) | set(name_values(files) if not single else [])
    names = {i.name: i.name for i in kept} if single else _names(kept, pseudonym, set(files))
    scrub = Scrub(pseudonym, {}, {v for v in searched if len(v) >= SEARCHED_MIN})
    template = None
    for instance in kept:
        _, body, _, pixel_head = _walk(folder, instance.name, scrub, prove=False)  # the survey proved it
        instance_uid = _top_text(scrub, "SOPInstanceUID")
        if not instance_uid:
            raise FormatError(f"{instance.name}: SOPInstanceUID is missing")
        header = _meta_bytes(scrub.uids[instance_uid[0]], instance.syntax) + body
        if template is None or instance.frames < template[1]:
            template = (header, instance.frames)
        header += pixel_head
        plan.instances.append({"action": "rewrite", "source": instance.name, "name": names[instance.name],
                               "header": header.hex(), "pixel_at": instance.pixel_at,
                               "pixel_end": instance.pixel_end,
                               "size": len(header) + instance.pixel_end - instance.pixel_at})
    if not single and any(names[i.name] != i.name for i in kept):
        plan.actions.append("instances renamed from the pseudonym")
    if label is not None and not single:
        _add_drawn_label(template[0], label, plan, scrub, set(files) | set(names.values()))
        found["drawn label"] = 1
        plan.actions.append("label replaced by a drawn pseudonym label")
    elif label is not None:
        plan.actions.append("no drawn label: a single-file slide has no folder for a LABEL instance")
    plan.actions = list(dict.fromkeys(
        ["file meta rebuilt, preamble zeroed, nothing kept after the pixel data"] + plan.actions + list(scrub.dropped)))
    plan.removed = sorted(searched | _searched([scrub.removed]))
    plan.uids = sorted(set(scrub.uids.values()))
    return Prepared(plan, found)


def _searched(groups):
    """The removed values verification searches for: all of them but the standard's vocabulary."""
    return {v for group in groups for v in group if v and v.casefold() not in table.VOCABULARY}


def name_values(files):
    """The old instance names, where they look like identifiers (a digit or a separator, as
    verify.name_values judges the slide's own name): searched for in the rebuilt files."""
    stems = (os.path.splitext(os.path.basename(f))[0] for f in files)
    return [s for s in stems if re.search(r"[\d\s_.,^-]", s)]


def _add_drawn_label(template, label, plan, scrub, taken):
    """The drawn label as a whole instance of the slide's series, from a kept instance's rebuilt
    header (so it passes the same allow-list); pydicom writes it."""
    from io import BytesIO

    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(BytesIO(template))
    for keyword in ("PerFrameFunctionalGroupsSequence", "DimensionIndexSequence", "ConcatenationUID",
                    "ConcatenationFrameOffsetNumber", "InConcatenationNumber", "ICCProfile",
                    "InConcatenationTotalNumber", "SOPInstanceUIDOfConcatenationSource",
                    "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "LossyImageCompressionRatio",
                    "LossyImageCompressionMethod"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = scrub.new_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.ImageType = ["DERIVED", "PRIMARY", "LABEL", "NONE"]
    ds.Rows = ds.TotalPixelMatrixRows = label.height
    ds.Columns = ds.TotalPixelMatrixColumns = label.width
    ds.NumberOfFrames, ds.TotalPixelMatrixFocalPlanes = 1, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.LossyImageCompression, ds.SpecimenLabelInImage, ds.BurnedInAnnotation = "00", "YES", "NO"
    ds.add_new(0x7FE00010, "OB", label.rgb())  # PixelData
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    content = out.getvalue()
    stem = re.sub(r"[^A-Za-z0-9.-]+", "_", plan.pseudonym).strip("._") or "slide"
    name = f"{stem}_label.dcm"
    while name in taken:
        name = name[:-4] + "-paw.dcm"
    plan.instances.append({"action": "write", "name": name, "header": content.hex(), "size": len(content)})


class DicomHandler(Handler):
    name = "dicom"
    title = "DICOM WSI"
    label_place = "a LABEL instance in the slide's folder; none for a single file (OpenSlide: label)"
    plan_type = DicomPlan

    def _plan(self, path, options, pseudonym, label):
        return _prepare(path, options, pseudonym, label)

    def check(self, path, plan, options):
        from . import dicomaudit
        return dicomaudit.audit(path, plan, options)

    def searched(self, path, plan):
        """The rebuilt headers and the drawn label are searched; the original pixel data
        element after each header is skipped unless full_scan (then the whole file is)."""
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        for item in plan.instances:
            if item["action"] == "rewrite":
                head = len(item["header"]) // 2
                yield os.path.join(folder, item["name"]), ranges.merge([(head, item["size"] - head)])
            elif item["action"] == "write":  # the drawn label: all of it
                yield os.path.join(folder, item["name"]), ranges.merge()
