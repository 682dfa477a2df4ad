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

import os
import re
import shutil
from dataclasses import dataclass, field

from .. import bundle, durable, ranges
from ..errors import FormatError
from . import dicomtable as table, icc
from .allow import printable_runs
from .base import Handler, Plan, Prepared

BLOCK = 1 << 20
SEARCHED_MIN = 4           # verify.MIN_SEARCH_LENGTH: shorter values are not searched for
UNDEFINED = 0xFFFFFFFF
ITEM, SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
STRING_VRS = frozenset("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split())
NUMBER_VRS = frozenset("AT FD FL OD OF OL OV SL SS SV UL US UV".split()) | {"US or SS"}
MAX_FRAGMENTS = 1 << 24
TAIL_READ = 1 << 20        # of the bytes after the pixel data (dropped), read for their texts
KEPT_FLAVOURS = ("VOLUME", "THUMBNAIL")


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

    def apply(self, path):
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        for item in self.instances:
            target = os.path.join(folder, item["name"])
            if item["action"] == "delete":
                if os.path.isdir(target) and not os.path.islink(target):
                    shutil.rmtree(target)
                elif os.path.lexists(target):
                    os.unlink(target)
                continue
            header = bytes.fromhex(item["header"])
            source = os.path.join(folder, item.get("source", item["name"]))
            if not _already(target, header, item["size"]):
                partial = durable.partial_path(target)
                with open(partial, "wb") as out:
                    out.write(header)
                    if item["action"] == "rewrite":
                        with open(source, "rb") as original:
                            original.seek(item["pixel_at"])
                            _copy(original, out, item["pixel_end"] - item["pixel_at"])
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(partial, target)
            if source != target and os.path.lexists(source):
                os.unlink(source)  # only once the new file is in place: a replay finds one or the other
        for sub in self.folders:
            if os.path.isdir(os.path.join(folder, sub)):
                os.rmdir(os.path.join(folder, sub))
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


def _already(target, header, size):
    if not os.path.isfile(target) or os.path.getsize(target) != size:
        return False
    with open(target, "rb") as fh:
        return fh.read(len(header)) == header


# --- reading the instances ------------------------------------------------------------------

@dataclass
class Instance:
    """What the plan needs to know of one DICOM file before rebuilding it."""
    name: str
    kind: str = "wsi"            # wsi, dicomdir, other
    flavour: str = ""
    image_type: tuple = ()
    label_in_image: str = ""
    burned_in: str = ""
    frame_of_reference: str = ""
    series: str = ""
    size: tuple = (0, 0)         # TotalPixelMatrixColumns/Rows (Columns/Rows without them)
    part: int = 0                # InConcatenationNumber
    concatenated: bool = False
    frames: int = 1
    pixel_at: int = 0
    pixel_end: int = 0
    removed: list = field(default_factory=list)


def _read(pydicom, file, name):
    """The dataset of `file` up to its pixel data, and where that element starts."""
    try:
        with open(file, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            return ds, fh.tell()
    except Exception as exc:  # pydicom raises many kinds on garbage
        raise FormatError(f"{name}: not a readable DICOM file ({type(exc).__name__})") from None


def _pixel_end(file, name, at, size):
    """The end of the PixelData element starting at `at`: its explicit length, or (encapsulated)
    the end of the sequence delimiter after the last fragment. Whatever follows goes."""
    fd = os.open(file, os.O_RDONLY)
    try:
        head = os.pread(fd, 12, at)
        if len(head) < 12 or head[:4] != b"\xe0\x7f\x10\x00" or head[4:6] not in (b"OB", b"OW"):
            raise FormatError(f"{name}: DICOM instance without pixel data")
        length = int.from_bytes(head[8:12], "little")
        if length != UNDEFINED:
            if at + 12 + length > size:
                raise FormatError(f"{name}: the pixel data runs past the end of the file")
            return at + 12 + length
        position = at + 12
        for _ in range(MAX_FRAGMENTS):
            item = os.pread(fd, 8, position)
            if len(item) < 8:
                raise FormatError(f"{name}: the pixel data fragments run past the end of the file")
            tag = int.from_bytes(item[0:2], "little") << 16 | int.from_bytes(item[2:4], "little")
            length = int.from_bytes(item[4:8], "little")
            if tag == SEQUENCE_END:
                return position + 8
            if tag != ITEM or length == UNDEFINED or position + 8 + length > size:
                raise FormatError(f"{name}: the pixel data fragments are not in the encapsulated layout")
            position += 8 + length
        raise FormatError(f"{name}: implausibly many pixel data fragments")
    finally:
        os.close(fd)


def _strings(element):
    """Every text an element holds (and the elements below a sequence), for the removed values:
    string values as read, printable runs of binary ones."""
    if element.VR == "SQ":
        return [t for item in element.value or [] for e in item for t in _strings(e)]
    value = element.value
    if value is None or value == "":
        return []
    if isinstance(value, (bytes, bytearray)):
        return [text.strip() for _, text in printable_runs(bytes(value))]
    if element.VR in STRING_VRS or element.VR == "UN":
        values = value if element.VM > 1 else [value]
        return [str(v).strip() for v in values if str(v).strip()]
    return []


def _values(element):
    if element.value is None or element.value == "":
        return []
    values = element.value if element.VM > 1 else [element.value]
    return [str(v).strip() for v in values]


def _survey(pydicom, folder, rel, options):
    """Read one file: what it is, its role, its pixel data span, and what scrubbing removes."""
    file = os.path.join(folder, rel)
    ds, pixel_at = _read(pydicom, file, rel)
    found = Instance(rel)
    sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID", ds.get("SOPClassUID", "")))
    if sop_class == table.DICOMDIR_SOP_CLASS:
        found.kind = "dicomdir"
        found.removed = [t for e in list(ds.file_meta) + list(ds) for t in _strings(e)]
        return found
    if ds.get("SOPClassUID") != table.WSI_SOP_CLASS:
        raise FormatError(f"{rel}: not a whole-slide image instance (paw does not anonymize other DICOM objects)")
    syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if syntax not in table.TRANSFER_SYNTAXES:
        raise FormatError(f"{rel}: transfer syntax not supported (TransferSyntaxUID)")
    size = os.path.getsize(file)
    if pixel_at >= size:
        raise FormatError(f"{rel}: DICOM instance without pixel data")
    found.pixel_at, found.pixel_end = pixel_at, _pixel_end(file, rel, pixel_at, size)
    found.image_type = tuple(str(v) for v in (ds.get("ImageType") or []))
    found.flavour = found.image_type[2] if len(found.image_type) > 2 else ""
    found.label_in_image = str(ds.get("SpecimenLabelInImage", ""))
    found.burned_in = str(ds.get("BurnedInAnnotation", ""))
    found.frame_of_reference = str(ds.get("FrameOfReferenceUID", ""))
    found.series = str(ds.get("SeriesInstanceUID", ""))
    columns, rows = ds.get("TotalPixelMatrixColumns"), ds.get("TotalPixelMatrixRows")
    found.size = (int(columns or ds.get("Columns") or 0), int(rows or ds.get("Rows") or 0))
    found.part = int(ds.get("InConcatenationNumber") or 0)
    found.concatenated = "ConcatenationUID" in ds
    try:
        found.frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        found.frames = 1
    if table.TRANSFER_SYNTAXES[syntax] == "native":
        _check_native_length(ds, found, rel)
    scrub = Scrub(pydicom, "", {}, (), strict=False)
    scrub.instance(ds, file_meta=ds.file_meta)
    found.removed = scrub.removed + _outside(file, found.pixel_end, size)
    return found


def _outside(file, pixel_end, size):
    """Texts in the bytes the rebuilt file leaves out: the preamble (a DICOM-TIFF dual-personality
    header, or text) and whatever follows the pixel data (padding, private groups), up to
    TAIL_READ bytes of it: they go, and are searched for."""
    with open(file, "rb") as fh:
        preamble = fh.read(128)
        fh.seek(pixel_end)
        tail = fh.read(min(size - pixel_end, TAIL_READ))
    return [text.strip() for data in (preamble, tail) for _, text in printable_runs(data)]


def _check_native_length(ds, found, rel):
    """Native pixel data holds exactly its frames (one pad byte to an even length): no room for
    anything else under the pixel data's name."""
    try:
        expected = found.frames * int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * \
            ((int(ds.BitsAllocated) + 7) // 8)
    except (AttributeError, TypeError, ValueError):
        raise FormatError(f"{rel}: the pixel description is incomplete (Rows, Columns, "
                          "SamplesPerPixel, BitsAllocated)") from None
    if found.pixel_end - found.pixel_at - 12 != expected + expected % 2:
        raise FormatError(f"{rel}: the pixel data length does not match its frames")


# --- the allow-list, applied -----------------------------------------------------------------

class Scrub:
    """Rebuilds datasets from dicomtable.TABLE. `removed` collects every text that does not stay;
    `dropped` names what went (for people: the ledger's removed column), never a value."""

    def __init__(self, pydicom, pseudonym, uids, searched, strict=True):
        self.pydicom = pydicom
        self.strict = strict         # refuse when a reader's element must go (off while surveying)
        self.pseudonym = pseudonym
        self.uids = uids             # old UID -> new UID, shared by every instance of the slide
        self.searched = searched     # values that go (>= SEARCHED_MIN): a kept value holding one goes too
        self.removed, self.dropped = [], []

    def instance(self, ds, file_meta):
        for element in file_meta:
            self.removed.extend(_strings(element))
        return self.dataset(ds, table.TABLE, "")

    def holds_removed(self, values):
        return any(needle in str(value) for value in values for needle in self.searched)

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

    def drop(self, element, where):
        self.removed.extend(_strings(element))
        self.dropped.append("private elements removed" if element.tag.is_private else f"{where} removed")

    def dataset(self, source, rules, path):
        from pydicom.dataset import Dataset
        out = Dataset()
        for element in source:
            keyword = element.keyword if not element.tag.is_private else ""
            rule = rules.get(keyword) if keyword else None
            where = f"{path}/{keyword}" if keyword else f"{path}/{element.tag}"
            if rule is None:
                self.drop(element, where)
            else:
                self.element(out, element, rule, where)
        for keyword, rule in rules.items():
            if rule.always and keyword not in out:
                self.write(out, keyword, rule, where=f"{path}/{keyword}")
        return out

    def write(self, out, keyword, rule, where):
        value = self.pseudonym if isinstance(rule, table.Pseudonym) else rule.value
        if self.holds_removed([value]):
            value = ""
            self.dropped.append(f"{where} emptied (it holds a removed value)")
        setattr(out, keyword, value)

    def element(self, out, element, rule, where):
        from pydicom.sequence import Sequence
        tag, vr = element.tag, element.VR
        if isinstance(rule, table.Items):
            if vr != "SQ":
                return self.drop(element, where)
            out.add_new(tag, "SQ", Sequence([self.dataset(item, rule.table, where)
                                             for item in element.value or []]))
        elif isinstance(rule, table.Numbers):
            count = len(_values(element)) if vr not in ("OV", "OD", "OF", "OL", "UV", "SV") else 1
            if vr not in NUMBER_VRS or not rule.vm[0] <= count <= rule.vm[1]:
                if rule.required and self.strict:
                    raise FormatError(f"{where.lstrip('/')}: not a number, and a reader needs it")
                return self.drop(element, where)
            out.add_new(tag, vr, element.value)
        elif isinstance(rule, table.Text):
            values = _values(element)
            if vr in STRING_VRS and rule.accepts(values) and not self.holds_removed(values):
                out.add_new(tag, vr, element.value)
                return
            self.removed.extend(_strings(element))
            if rule.fallback is not None and not self.holds_removed([rule.fallback]):
                out.add_new(tag, vr if vr in STRING_VRS else "LO", rule.fallback)
                self.dropped.append(f"{where} set to {rule.fallback}")
            elif rule.required and self.strict:
                raise FormatError(f"{where.lstrip('/')}: value not in the allow-list, and a reader needs it")
            else:
                self.dropped.append(f"{where} removed")
        elif isinstance(rule, table.NewUid):
            old = _strings(element)
            self.removed.extend(old)
            if old:
                out.add_new(tag, "UI", self.new_uid(old[0]))
        elif isinstance(rule, (table.Pseudonym, table.Fixed)):
            old = _strings(element)
            self.write(out, element.keyword, rule, where)
            changed = [v for v in old if v != str(out[tag].value)]
            if changed:
                self.removed.extend(changed)
                self.dropped.append(f"{where} replaced")
        elif isinstance(rule, table.Empty):
            old = _strings(element)
            if old or (vr == "SQ" and element.value):
                self.removed.extend(old)
                self.dropped.append(f"{where} emptied")
            out.add_new(tag, vr, Sequence([]) if vr == "SQ" else ("" if vr in STRING_VRS else b""))
        elif isinstance(rule, table.Codes):
            self.codes(out, element, where)
        elif isinstance(rule, table.Icc):
            profile = bytes(element.value or b"")
            try:
                problems = icc.unexplained(profile, table.ICC_TEXTS)
            except FormatError:
                problems = ["structure"]
            if problems or self.holds_removed(text for _, text in printable_runs(profile)):
                self.drop(element, where)
            else:
                out.add_new(tag, vr, profile)

    def codes(self, out, element, where):
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence
        items = []
        for item in element.value if element.VR == "SQ" else []:
            key = (str(item.get("CodingSchemeDesignator", "")), str(item.get("CodeValue", "")))
            meaning = table.CODE_MEANINGS.get(key)
            if meaning is None or self.holds_removed([*key, meaning]):
                self.removed.extend(t for e in item for t in _strings(e))
                self.dropped.append(f"{where}: an unknown code removed")
                continue
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = key[1], key[0], meaning
            self.removed.extend(t for e in item for t in _strings(e) if t not in (*key, meaning))
            items.append(code)
        out.add_new(element.tag, "SQ", Sequence(items))


def _header(pydicom, ds, syntax):
    """Preamble (zero), `DICM`, a file meta group built from nothing, the dataset."""
    from io import BytesIO
    from pydicom.dataset import FileMetaDataset
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = table.META_VERSION
    meta.MediaStorageSOPClassUID = table.WSI_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = table.IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = table.IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    ds.preamble = bytes(128)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


# --- the plan --------------------------------------------------------------------------------

def _keep(instance, options, volume_frames):
    """Whether an instance is known to show no label (the only ones kept); else why it goes."""
    flavour = instance.flavour
    if flavour == "LABEL":
        return "label instance deleted"
    if flavour == "OVERVIEW":  # shows the label; keep_macro keeps it on purpose
        return None if options.keep_macro else "macro (overview) instance deleted"
    if flavour not in ("VOLUME", "THUMBNAIL"):
        return "instance of another flavour deleted (ImageType)"
    if instance.burned_in == "YES" or instance.label_in_image == "YES":
        return f"{flavour.lower()} instance deleted (SpecimenLabelInImage or BurnedInAnnotation YES)"
    if flavour == "VOLUME":
        return None
    if flavour == "THUMBNAIL":
        derived = instance.image_type[:1] == ("DERIVED",) or instance.image_type[3:4] == ("RESAMPLED",)
        if instance.label_in_image == "NO" or (derived and instance.frame_of_reference in volume_frames):
            return None
        return "thumbnail instance deleted (not known to show no label)"


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
    pydicom = _pydicom()
    single = not os.path.isdir(path)
    folder = os.path.dirname(path) if single else path
    plan, found = DicomPlan(pseudonym=pseudonym), {}
    if single:
        files = [os.path.basename(path)]
    else:
        contents = bundle.dicom_contents(path)
        if contents.strays:
            raise FormatError(f"{contents.strays[0]!r}: a file that is not part of a DICOM slide "
                              "(only instances, a DICOMDIR and system clutter may be in its folder)")
        files = contents.members
        for rel, what in contents.clutter:
            plan.instances.append({"action": "delete", "name": rel})
            plan.actions.append(f"{what} removed")
        plan.folders = contents.folders
    survey = [_survey(pydicom, folder, rel, options) for rel in files]
    wsi = [i for i in survey if i.kind == "wsi"]
    volume_frames = {i.frame_of_reference for i in wsi if i.flavour == "VOLUME"
                     and _keep(i, options, set()) is None}
    kept = []
    for instance in survey:
        found_as = "dicomdir" if instance.kind == "dicomdir" else instance.flavour.lower() or "unknown"
        found[found_as] = found.get(found_as, 0) + 1
        why = "DICOMDIR removed (it names the patient and the old UIDs)" if instance.kind == "dicomdir" \
            else _keep(instance, options, volume_frames)
        if why:
            plan.instances.append({"action": "delete", "name": instance.name, "role": instance.flavour})
            plan.actions.append(why)
        else:
            kept.append(instance)
    if not any(i.flavour == "VOLUME" for i in kept):
        raise FormatError("nothing would be left of the slide (no VOLUME instance known to show no label)")
    if len({i.series for i in kept}) > 1:
        raise FormatError(f"the folder holds instances of {len({i.series for i in kept})} series: "
                          "put each slide in a folder of its own")
    if single and any(i.concatenated for i in kept):
        raise FormatError("a single instance of a concatenation: the other parts are missing")

    searched = _searched(i.removed for i in survey)
    searched.update(name_values(files) if not single else [])
    needles = {v for v in searched if len(v) >= SEARCHED_MIN}
    names = {i.name: i.name for i in kept} if single else _names(kept, pseudonym, set(files))
    scrub, template = Scrub(pydicom, pseudonym, {}, needles), None
    for instance in kept:
        file = os.path.join(folder, instance.name)
        ds, _ = _read(pydicom, file, instance.name)
        syntax = str(ds.file_meta.TransferSyntaxUID)
        rebuilt = scrub.instance(ds, file_meta=ds.file_meta)
        del ds
        header = _header(pydicom, rebuilt, syntax)
        if template is None or instance.frames < template[1]:
            template = (rebuilt, instance.frames)
        plan.instances.append({"action": "rewrite", "source": instance.name, "name": names[instance.name],
                               "header": header.hex(), "pixel_at": instance.pixel_at,
                               "pixel_end": instance.pixel_end,
                               "size": len(header) + instance.pixel_end - instance.pixel_at})
    if not single and any(names[i.name] != i.name for i in kept):
        plan.actions.append("instances renamed from the pseudonym")
    if label is not None and not single:
        _add_drawn_label(pydicom, template[0], label, plan, scrub, set(files) | set(names.values()))
        found["drawn label"] = 1
        plan.actions.append("label replaced by a drawn pseudonym label")
    elif label is not None:
        plan.actions.append("no drawn label: a single-file slide has no folder for a LABEL instance")
    dropped = [re.sub(r"\[\d+\]", "", what).lstrip("/") for what in scrub.dropped]
    plan.actions = list(dict.fromkeys(
        ["file meta rebuilt, preamble zeroed, nothing kept after the pixel data"] + plan.actions + dropped))
    plan.removed = sorted(searched | _searched([scrub.removed]))
    plan.uids = sorted(set(scrub.uids.values()))
    return Prepared(plan, found)


def _searched(groups):
    """The removed values verification searches for: all of them but the standard's vocabulary."""
    return {v for group in groups for v in group if v and v not in table.VOCABULARY}


def name_values(files):
    """The old instance names, where they look like identifiers (a digit or a separator, as
    verify.name_values judges the slide's own name): searched for in the rebuilt files."""
    stems = (os.path.splitext(os.path.basename(f))[0] for f in files)
    return [s for s in stems if re.search(r"[\d\s_.,^-]", s)]


def _add_drawn_label(pydicom, template, label, plan, scrub, taken):
    """The drawn label as a whole instance of the slide's series, from a kept instance's rebuilt
    header (so it passes the same allow-list)."""
    import copy
    from pydicom.uid import ExplicitVRLittleEndian

    ds = copy.deepcopy(template)
    for keyword in ("PerFrameFunctionalGroupsSequence", "DimensionIndexSequence", "ConcatenationUID",
                    "ConcatenationFrameOffsetNumber", "InConcatenationNumber", "ICCProfile",
                    "InConcatenationTotalNumber", "SOPInstanceUIDOfConcatenationSource",
                    "ExtendedOffsetTable", "ExtendedOffsetTableLengths", "LossyImageCompressionRatio",
                    "LossyImageCompressionMethod"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.SOPInstanceUID = scrub.new_uid()
    ds.ImageType = ["DERIVED", "PRIMARY", "LABEL", "NONE"]
    ds.Rows = ds.TotalPixelMatrixRows = label.height
    ds.Columns = ds.TotalPixelMatrixColumns = label.width
    ds.NumberOfFrames, ds.TotalPixelMatrixFocalPlanes = 1, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.LossyImageCompression, ds.SpecimenLabelInImage, ds.BurnedInAnnotation = "00", "YES", "NO"
    ds.add_new(0x7FE00010, "OB", label.rgb())  # PixelData
    content = _header(pydicom, ds, ExplicitVRLittleEndian)
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
