"""Synthetic DICOM WSI slide: a folder of instances as a scanner exports them (needs pydicom).

One series, uncompressed RGB (explicit VR little endian), TILED_FULL, as libdicom (OpenSlide)
reads it: two VOLUME levels, a THUMBNAIL (RESAMPLED, SpecimenLabelInImage NO), a LABEL and an
OVERVIEW. Instance files are named the way PACS exports name them, after the accession and the
SOP Instance UID. Identifiers are planted where the Basic Application Level Confidentiality
Profile says they live (patient, study/accession, dates, operator, institution, device serial,
container and specimen identifiers, label text and barcode, a private element) and where a
top-level-only scrubber misses them: nested sequences (optical path description, acquisition
context text, frame acquisition date-time, derivation description) and the file meta group
(source application entity title).
"""

import os

from . import ACCESSION, BARCODE, OPERATOR, PATIENT, SERIAL

WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"
TILE = 16
INSTITUTION = "Saint Paw Hospital"
DATE = "20261120"
NESTED = "nested-text-PAW-4411"          # inside sequences, several levels down
AE_TITLE = "PAWSCANNER17"                  # file meta SourceApplicationEntityTitle (AE, 16 max)
STATION = "PAWSTATION-0042"
INSTANCES = (("VOLUME", (64, 48)), ("VOLUME", (32, 24)), ("THUMBNAIL", (16, 12)),
             ("LABEL", (32, 32)), ("OVERVIEW", (48, 32)))


def planted():
    return [PATIENT, ACCESSION, BARCODE, OPERATOR, SERIAL, "19610402", DATE, INSTITUTION, NESTED,
            AE_TITLE, STATION]


def instance(role, study, series, frame_of_reference, width, height, codec="native"):
    """One instance dataset (file meta attached) with every planted identifier; `codec`: frames
    native RGB, or encapsulated as baseline JPEG or JPEG 2000 codestreams (Pillow)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = WSI
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = AE_TITLE
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = WSI, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
    resampled = role == "THUMBNAIL" or (role == "VOLUME" and width < 64)
    ds.ImageType = ["DERIVED" if resampled else "ORIGINAL", "PRIMARY", role,
                    "RESAMPLED" if resampled else "NONE"]
    ds.Modality, ds.Manufacturer, ds.StationName = "SM", "paw synthetic scanner", STATION
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT, ACCESSION, "19610402"
    ds.AccessionNumber, ds.StudyID = ACCESSION, ACCESSION
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = DATE
    ds.StudyTime = ds.ContentTime = "143207"
    ds.AcquisitionDateTime = DATE + "143207"
    ds.OperatorsName, ds.DeviceSerialNumber = OPERATOR, SERIAL
    ds.InstitutionName = INSTITUTION
    ds.ContainerIdentifier, ds.LabelText, ds.BarcodeValue = BARCODE, PATIENT, BARCODE
    specimen = Dataset()
    specimen.SpecimenIdentifier, specimen.SpecimenUID = ACCESSION, generate_uid()
    step = Dataset()
    step.ValueType, step.TextValue = "TEXT", NESTED
    preparation = Dataset()
    preparation.SpecimenPreparationStepContentItemSequence = Sequence([step])
    specimen.SpecimenPreparationSequence = Sequence([preparation])
    ds.SpecimenDescriptionSequence = Sequence([specimen])
    context = Dataset()
    context.ValueType, context.TextValue = "TEXT", f"operator {OPERATOR}"
    ds.AcquisitionContextSequence = Sequence([context])
    ds.add_new(0x00090010, "LO", "PAW PRIVATE")
    ds.add_new(0x00091010, "LO", f"private {PATIENT}")
    ds.InstanceNumber, ds.SeriesNumber = 1, 1
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = width, height
    # levels are tiled; associated images are one frame (OpenSlide reads nothing else for them)
    tile = (TILE, TILE) if role == "VOLUME" else (width, height)
    ds.Columns, ds.Rows = tile
    frames = -(-width // tile[0]) * -(-height // tile[1])
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.ImagedVolumeWidth, ds.ImagedVolumeHeight, ds.ImagedVolumeDepth = 0.064, 0.048, 0.001
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = origin.YOffsetInSlideCoordinateSystem = 0
    ds.TotalPixelMatrixOriginSequence = Sequence([origin])
    measures = Dataset()
    spacing = 0.001 * 64 / width
    measures.PixelSpacing, measures.SliceThickness = [spacing, spacing], 0.001
    content = Dataset()
    content.FrameAcquisitionDateTime = DATE + "143207"
    derivation = Dataset()
    derivation.DerivationDescription = f"converted from {ACCESSION}.svs"
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.FrameContentSequence = Sequence([content])
    shared.DerivationImageSequence = Sequence([derivation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    path = Dataset()
    path.OpticalPathIdentifier = "1"
    path.OpticalPathDescription = f"{NESTED} {SERIAL}"
    path.ObjectiveLensPower = 20
    ds.OpticalPathSequence = Sequence([path])
    ds.NumberOfOpticalPaths = 1
    ds.VolumetricProperties = "VOLUME"
    ds.SpecimenLabelInImage = "YES" if role in ("LABEL", "OVERVIEW") else "NO"
    ds.FocusMethod, ds.ExtendedDepthOfField, ds.BurnedInAnnotation = "AUTO", "NO", "NO"
    tiles = [bytes(((frame * 40 + i + width) % 256 for i in range(tile[0] * tile[1] * 3))) for frame in range(frames)]
    if codec == "native":
        ds.PixelData = b"".join(tiles)
        return ds
    from pydicom.encaps import encapsulate
    meta.TransferSyntaxUID, ds.PhotometricInterpretation = {
        "jpeg": ("1.2.840.10008.1.2.4.50", "YBR_FULL_422"), "j2k": ("1.2.840.10008.1.2.4.90", "YBR_RCT")}[codec]
    ds.LossyImageCompression = "01" if codec == "jpeg" else "00"
    ds.PixelData = encapsulate([encoded(data, tile, codec) for data in tiles])
    ds["PixelData"].VR = "OB"
    return ds


def encoded(rgb, size, codec):
    """One RGB frame as a baseline JPEG (JFIF header, no comment) or a lossless JPEG 2000
    codestream (OpenJPEG writes its banner as a COM segment)."""
    import io
    from PIL import Image
    out = io.BytesIO()
    image = Image.frombytes("RGB", size, rgb)
    if codec == "jpeg":
        image.save(out, "JPEG", quality=90)
    else:
        image.save(out, "JPEG2000", no_jp2=True)
    return out.getvalue()


def write(folder, names="accession", codec="native"):
    """A slide folder (the five instances of INSTANCES); returns the planted values. `names`:
    "accession" (`<accession>_<SOP UID>_<role>.dcm`, as exports name them), "plain"
    (`volume-0.dcm`, `label-3.dcm` ...) or "bare" (`IMG0001` ..., no extension)."""
    from pydicom.uid import generate_uid
    os.makedirs(folder, exist_ok=True)
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    for n, (role, size) in enumerate(INSTANCES):
        ds = instance(role, study, series, frame_of_reference, *size, codec=codec)
        name = {"accession": f"{ACCESSION}_{ds.SOPInstanceUID}_{role.lower()}{n}.dcm",
                "plain": f"{role.lower()}-{n}.dcm", "bare": f"IMG{n + 1:04d}"}[names]
        ds.save_as(os.path.join(folder, name), enforce_file_format=True)
    return planted()


def volume(folder):
    """The path of the largest VOLUME instance in a folder written by `write` (before paw)."""
    import pydicom
    sizes = {}
    for name in os.listdir(folder):
        ds = pydicom.dcmread(os.path.join(folder, name), stop_before_pixels=True)
        if ds.ImageType[2] == "VOLUME":
            sizes[name] = ds.TotalPixelMatrixColumns
    return os.path.join(folder, max(sizes, key=sizes.get))


def write_large(folder, frames, tile=256, per_frame=False):
    """One VOLUME instance of `frames` native RGB tiles whose pixel data is a sparse hole (for
    the benchmarks: no disk cost to create). `per_frame`: TILED_SPARSE with one
    PerFrameFunctionalGroupsSequence item per frame (position, a frame date-time), the header
    that grows with the frame count."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid
    os.makedirs(folder, exist_ok=True)
    columns = 64 * tile
    rows = -(-frames // 64) * tile
    ds = instance("VOLUME", generate_uid(), generate_uid(), generate_uid(), TILE, TILE)
    del ds.PixelData
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]  # the base level, not a resampled one
    ds.Rows = ds.Columns = tile
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows, ds.NumberOfFrames = columns, rows, frames
    if per_frame:
        ds.DimensionOrganizationType = "TILED_SPARSE"
        items = []
        for n in range(frames):
            position, content = Dataset(), Dataset()
            position.ColumnPositionInTotalImagePixelMatrix = 1 + (n % 64) * tile
            position.RowPositionInTotalImagePixelMatrix = 1 + (n // 64) * tile
            content.FrameAcquisitionDateTime = DATE + "143207"
            item = Dataset()
            item.PlanePositionSlideSequence = Sequence([position])
            item.FrameContentSequence = Sequence([content])
            items.append(item)
        ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    path = os.path.join(folder, f"{ACCESSION}_volume.dcm")
    ds.save_as(path, enforce_file_format=True)
    length = frames * tile * tile * 3
    with open(path, "ab") as fh:
        fh.write(b"\xe0\x7f\x10\x00OB\x00\x00" + length.to_bytes(4, "little"))
        fh.truncate(fh.tell() + length)
    return path


def write_large_jpeg(folder, frames):
    """One VOLUME instance of `frames` (a multiple of 64) baseline JPEG tiles of 16 x 16, the
    same tile repeated, with a Basic Offset Table (for the benchmark of the frame-layout proof,
    whose cost grows with the frame count)."""
    import struct

    from pydicom.uid import generate_uid
    os.makedirs(folder, exist_ok=True)
    ds = instance("VOLUME", generate_uid(), generate_uid(), generate_uid(), TILE, TILE, codec="jpeg")
    tile = encoded(bytes(range(256)) * 3, (TILE, TILE), "jpeg")
    del ds.PixelData
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = 64 * TILE, frames // 64 * TILE
    ds.NumberOfFrames, ds.DimensionOrganizationType = frames, "TILED_FULL"
    path = os.path.join(folder, f"{ACCESSION}_volume.dcm")
    ds.save_as(path, enforce_file_format=True)
    fragment = item(tile)
    table = struct.pack(f"<{frames}I", *range(0, frames * len(fragment), len(fragment)))
    with open(path, "ab") as fh:
        fh.write(b"\xe0\x7f\x10\x00OB\0\0\xff\xff\xff\xff" + item(table))
        for _ in range(frames):
            fh.write(fragment)
        fh.write(b"\xfe\xff\xdd\xe0\0\0\0\0")
    return path


def write_single(path):
    """One VOLUME instance as a single-file slide (for the fuzzer); returns the planted values."""
    from pydicom.uid import generate_uid
    ds = instance("VOLUME", generate_uid(), generate_uid(), generate_uid(), 64, 48)
    ds.save_as(path, enforce_file_format=True)
    return planted()


# --- raw encapsulated pixel data (hostile layouts pydicom's encoder would not write) -----------

def item(data):
    """One item of encapsulated pixel data (padded to an even length)."""
    data += b"\0" * (len(data) % 2)
    return b"\xfe\xff\x00\xe0" + len(data).to_bytes(4, "little") + data


def offsets(fragments):
    """The Basic Offset Table entries of fragments stored one after the other."""
    found, at = [], 0
    for fragment in fragments:
        found.append(at)
        at += 8 + len(fragment) + len(fragment) % 2
    return found


def encapsulated(fragments, table=None):
    """The bytes of a PixelData element (OB, undefined length): the offset table item (`table`:
    a list of offsets, raw bytes, or None for the offsets of `fragments`), the fragments as
    given, the sequence delimiter."""
    import struct
    if table is None:
        table = offsets(fragments)
    if isinstance(table, list):
        table = struct.pack(f"<{len(table)}I", *table)
    body = item(table) + b"".join(item(f) for f in fragments) + b"\xfe\xff\xdd\xe0\0\0\0\0"
    return b"\xe0\x7f\x10\x00OB\0\0\xff\xff\xff\xff" + body


def frames(path):
    """The frames of an encapsulated instance, as pydicom reads them (the byte padding an odd
    length cut: each is exactly its codestream)."""
    import pydicom
    from pydicom.encaps import generate_fragmented_frames
    ds = pydicom.dcmread(path)
    found = [b"".join(f) for f in generate_fragmented_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames))]
    return [f[:-1] if f.endswith(b"\xff\xd9\x00") else f for f in found]


def rewrite_pixels(path, element, change=None):
    """Save the instance at `path` again with `element` (raw PixelData bytes) as its pixel data;
    `change(ds)` edits the header first."""
    import pydicom
    ds = pydicom.dcmread(path)
    del ds.PixelData
    if change:
        change(ds)
    ds.save_as(path, enforce_file_format=True)
    with open(path, "ab") as fh:
        fh.write(element)
