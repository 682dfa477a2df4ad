"""DICOM whole-slide images (VL Whole Slide Microscopy Image Storage), needs pydicom.

A slide is a folder of instances (or one file). OpenSlide (openslide-vendor-dicom.c, libdicom)
loads every file of the folder with the same SeriesInstanceUID; ImageType[2] gives the role:
VOLUME levels, THUMBNAIL, LABEL (`label`) and OVERVIEW (`macro`).

What paw does, following the DICOM Basic Application Level Confidentiality Profile (PS3.15
Annex E) with an allow-list: every instance keeps only the attributes in KEEP (image pixel and
whole-slide geometry, optical paths, encoding); all others go (patient, study and accession
identifiers, dates and times, operators, institution, device serial numbers, specimen and
container identifiers, label text and barcodes, private tags). Patient name and ID and the
container identifier become the pseudonym; Study, Series, SOP Instance, Frame of Reference,
Dimension Organization and Concatenation UIDs are replaced by new ones, mapped the same way in
every instance of the slide so they still belong together. LABEL and OVERVIEW instances are
deleted (OVERVIEW kept with `keep_macro`). Instances that are not whole-slide images (e.g.
annotations) or have no pixel data are refused.

With `label: replace` a slide folder gets a drawn LABEL instance (uncompressed RGB, one frame)
instead of its label: a copy of a kept instance's scrubbed header with new SOP Instance UID, the
label's geometry and pixels, in the same series. A single-file slide gets none (there is no
folder to put it in).

Files are rewritten, not patched: the new header is written, then the original pixel data
element is copied byte for byte after it (never decoded, streamed in 1 MiB blocks), and the new
file replaces the old one with a rename. The cost is one copy of each instance (disk speed).
"""

import os
import shutil
from dataclasses import dataclass, field

from .. import bundle, durable, ranges
from ..errors import FormatError
from .base import Handler, Plan, Prepared

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
DELETED_ROLES = {"LABEL": "label", "OVERVIEW": "macro"}
KEEP = frozenset("""
SOPClassUID SOPInstanceUID ImageType Modality Manufacturer ManufacturerModelName SoftwareVersions
SpecificCharacterSet InstanceNumber SeriesNumber PatientName PatientID StudyInstanceUID
SeriesInstanceUID FrameOfReferenceUID PositionReferenceIndicator ContainerIdentifier
Rows Columns SamplesPerPixel PhotometricInterpretation PlanarConfiguration BitsAllocated
BitsStored HighBit PixelRepresentation NumberOfFrames TotalPixelMatrixColumns
TotalPixelMatrixRows TotalPixelMatrixFocalPlanes TotalPixelMatrixOriginSequence
ImagedVolumeWidth ImagedVolumeHeight ImagedVolumeDepth ImageOrientationSlide
DimensionOrganizationType DimensionOrganizationSequence DimensionIndexSequence
SharedFunctionalGroupsSequence PerFrameFunctionalGroupsSequence OpticalPathSequence
NumberOfOpticalPaths VolumetricProperties SpecimenLabelInImage FocusMethod ExtendedDepthOfField
NumberOfFocalPlanes DistanceBetweenFocalPlanes LossyImageCompression LossyImageCompressionRatio
LossyImageCompressionMethod BurnedInAnnotation RecommendedAbsentPixelCIELabValue ICCProfile
ColorSpace ConcatenationUID ConcatenationFrameOffsetNumber InConcatenationNumber
InConcatenationTotalNumber SOPInstanceUIDOfConcatenationSource PresentationLUTShape
RescaleIntercept RescaleSlope PixelPaddingValue AcquisitionContextSequence
PatientIdentityRemoved DeidentificationMethod
""".split())
NEW_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
            "ConcatenationUID", "SOPInstanceUIDOfConcatenationSource", "DimensionOrganizationUID")
BLOCK = 1 << 20


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise FormatError("DICOM needs pydicom: pip install -r requirements-dicom.txt") from None
    return pydicom


def _instances(path):
    return bundle.dicom_instances(path) if os.path.isdir(path) else [path]


def detect(path):
    files = _instances(path)
    return bool(files) and all(os.path.isfile(f) and bundle.is_dicom(f) for f in files)


@dataclass
class DicomPlan(Plan):
    """Per instance: delete it, replace its header (pixel data copied from `pixel_at` on), or
    write it whole (the drawn label)."""
    # dicts: name, action (delete, rewrite, write), header (for `write`: the whole file), pixel_at, size
    instances: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    actions: list = field(default_factory=list)

    def apply(self, path):
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        for item in self.instances:
            target = os.path.join(folder, item["name"])
            if item["action"] == "delete":
                if os.path.lexists(target):
                    os.unlink(target)
                continue
            header = bytes.fromhex(item["header"])
            if _already(target, header, item["size"]):
                continue  # a replay after the rename
            partial = durable.partial_path(target)
            with open(partial, "wb") as out:
                out.write(header)
                if item["action"] == "rewrite":
                    with open(target, "rb") as source:
                        source.seek(item["pixel_at"])
                        shutil.copyfileobj(source, out, BLOCK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        durable.fsync_dir(folder)

    def to_json(self):
        return {"instances": self.instances, "removed": self.removed, "actions": self.actions}

    @classmethod
    def from_json(cls, data):
        return cls(data["instances"], data["removed"], data["actions"])

    def summary(self):
        counts = {}
        for item in self.instances:
            counts[item["action"]] = counts.get(item["action"], 0) + 1
        done = {"rewrite": "rewrite the header of", "delete": "delete", "write": "write"}
        return "; ".join(f"{done[a]} {n} instance(s)" for a, n in sorted(counts.items())) + \
            "; pixel data copied byte for byte"


def _already(target, header, size):
    if not os.path.exists(target) or os.path.getsize(target) != size:
        return False
    with open(target, "rb") as fh:
        return fh.read(len(header)) == header


def _texts(element):
    """String values of an element (and of sequences below it), to search for afterwards."""
    if element.VR == "SQ":
        return [t for item in element.value for e in item for t in _texts(e)]
    if element.VR in ("PN", "LO", "SH", "LT", "ST", "UT", "DA", "DT", "TM", "UI", "AE", "CS", "UC"):
        values = element.value if element.VM > 1 else [element.value]
        return [str(v) for v in values if v not in (None, "")]
    return []


def _prepare(path, options, pseudonym, label):
    pydicom = _pydicom()
    from pydicom.uid import generate_uid

    plan, found, uid_map, template = DicomPlan(), {}, {}, None
    kept_series, kept_text = set(), set()
    for file in _instances(path):
        name = os.path.basename(file)
        try:
            with open(file, "rb") as fh:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
                pixel_at = fh.tell()
        except Exception as exc:  # pydicom raises many kinds on garbage
            raise FormatError(f"{name}: not a readable DICOM file ({type(exc).__name__})") from None
        if ds.get("SOPClassUID") != WSI_SOP_CLASS:
            raise FormatError(f"{name}: not a whole-slide image instance")
        size = os.path.getsize(file)
        if pixel_at >= size:
            raise FormatError(f"{name}: DICOM instance without pixel data")
        if ds.file_meta.get("TransferSyntaxUID") == "1.2.840.10008.1.2.1.99":
            raise FormatError(f"{name}: deflated transfer syntax is not supported")
        image_type = list(ds.get("ImageType", []))
        role = image_type[2] if len(image_type) > 2 else "UNKNOWN"
        found[role.lower()] = found.get(role.lower(), 0) + 1
        if role in DELETED_ROLES and not (role == "OVERVIEW" and options.keep_macro):
            plan.instances.append({"name": name, "action": "delete", "role": role})
            plan.actions.append(f"{DELETED_ROLES[role]} instance deleted")
            plan.removed.extend(t for e in ds for t in _texts(e))
            continue
        for element in list(ds):
            keyword = element.keyword
            if keyword not in KEEP or element.tag.is_private:
                plan.removed.extend(_texts(element))
                plan.actions.append(f"{keyword or element.tag} removed")
                del ds[element.tag]
        for keyword in ("PatientName", "PatientID", "ContainerIdentifier"):
            if keyword in ds:
                plan.removed.extend(_texts(ds[keyword]))
            setattr(ds, keyword, pseudonym)
        for element in _walk(ds):
            if element.keyword in NEW_UIDS and element.value:
                old = str(element.value)
                plan.removed.append(old)
                element.value = uid_map.setdefault(old, generate_uid())
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "paw: Basic Application Confidentiality Profile, allow-list"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        kept_series.add(ds.SeriesInstanceUID)
        kept_text.update(t for e in ds for t in _texts(e))
        template = ds
        header = _header(pydicom, ds)
        plan.instances.append({"name": name, "action": "rewrite", "header": header.hex(),
                               "pixel_at": pixel_at, "size": len(header) + size - pixel_at})
    if not kept_series:
        raise FormatError("nothing would be left of the slide (only label/overview instances)")
    if label is not None and os.path.isdir(path):
        kept_text.update(_add_drawn_label(pydicom, template, label, plan, path))
        found["drawn label"] = 1
        plan.actions.append("label replaced by a drawn pseudonym label")
    elif label is not None:
        plan.actions.append("no drawn label: a single-file slide has no folder for a LABEL instance")
    # A removed value found inside a value the profile keeps (the converter's name repeated in
    # ContributingEquipmentSequence and ManufacturerModelName) is not a leak: not searched for.
    plan.removed = [v for v in dict.fromkeys(plan.removed)
                    if v != pseudonym and not any(v in k for k in kept_text)]
    plan.actions = list(dict.fromkeys(plan.actions))
    return Prepared(plan, found)


def _add_drawn_label(pydicom, template, label, plan, folder):
    """The drawn label as a whole instance, in the place of the first deleted LABEL instance."""
    import copy
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = copy.deepcopy(template)
    for keyword in ("PerFrameFunctionalGroupsSequence", "DimensionIndexSequence", "ConcatenationUID",
                    "ConcatenationFrameOffsetNumber", "InConcatenationNumber",
                    "InConcatenationTotalNumber", "SOPInstanceUIDOfConcatenationSource", "ICCProfile"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
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
    content = _header(pydicom, ds)
    deleted = [i["name"] for i in plan.instances if i["action"] == "delete" and i["role"] == "LABEL"]
    name = deleted[0] if deleted else _free_name(folder, "label-paw")
    plan.instances = [i for i in plan.instances if i["name"] != name] + [
        {"name": name, "action": "write", "header": content.hex(), "pixel_at": 0, "size": len(content)}]
    return [t for e in ds for t in _texts(e)]


def _free_name(folder, stem):
    """`stem.dcm`, or `stem-2.dcm` ... if taken: the drawn label never replaces a file."""
    name, n = f"{stem}.dcm", 1
    while os.path.lexists(os.path.join(folder, name)):
        n += 1
        name = f"{stem}-{n}.dcm"
    return name


def _walk(dataset):
    for element in dataset:
        yield element
        if element.VR == "SQ":
            for item in element.value:
                yield from _walk(item)


def _header(pydicom, ds):
    from io import BytesIO
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


class DicomHandler(Handler):
    name = "dicom"
    title = "DICOM WSI"
    label_place = "a LABEL instance in the slide's folder; none for a single file (OpenSlide: label)"
    plan_type = DicomPlan

    def _plan(self, path, options, pseudonym, label):
        return _prepare(path, options, pseudonym, label)

    def check(self, path, plan, options):
        return _check(path, plan, options)

    def searched(self, path, plan):
        """The rewritten headers and the drawn label are searched; the original pixel data
        (everything after the headers) is skipped unless full_scan (then the whole file is searched)."""
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        for item in plan.instances:
            if item["action"] == "rewrite":
                head = len(item["header"]) // 2
                yield os.path.join(folder, item["name"]), ranges.merge([(head, item["size"] - head)])
            elif item["action"] == "write":  # the drawn label: all of it
                yield os.path.join(folder, item["name"]), ranges.merge()


def _check(path, plan, options):
    """Re-read every remaining instance: roles, allow-list, shared new UIDs, pixel data place."""
    pydicom = _pydicom()
    problems = []
    old_values = set(plan.removed)
    for item in plan.instances:
        file = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), item["name"])
        if item["action"] == "delete":
            if os.path.exists(file):
                problems.append(f"{item['name']} should have been deleted")
            continue
        with open(file, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
            if item["action"] == "write":  # the drawn label: exactly the bytes paw made
                fh.seek(0)
                if fh.read() != bytes.fromhex(item["header"]):
                    problems.append(f"{item['name']} is not the drawn label paw wrote")
            elif fh.tell() != len(bytes.fromhex(item["header"])):
                problems.append(f"{item['name']}: the pixel data is not where it was written")
        role = list(ds.get("ImageType", ["", "", ""]))[2:3]
        if item["action"] == "write":
            if role != ["LABEL"]:
                problems.append(f"{item['name']}: the drawn label is not a LABEL instance")
        elif role and role[0] in DELETED_ROLES and not (role[0] == "OVERVIEW" and options.keep_macro):
            problems.append(f"{item['name']} is still a {role[0]} instance")
        for element in ds:
            if element.keyword not in KEEP or element.tag.is_private:
                problems.append(f"{item['name']}: {element.keyword or element.tag} is still there")
        if str(ds.SeriesInstanceUID) in old_values or str(ds.StudyInstanceUID) in old_values:
            problems.append(f"{item['name']} still carries an original UID")
    return problems
