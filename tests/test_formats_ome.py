"""OME-TIFF: the real bfconvert output and synthetic slide-scanner conversions (label and macro
as further OME Images), read before and after by tifffile, OpenSlide and Bio-Formats; and the
hostile variants: identifiers in every place of the OME-XML, in other tags, in SubIFDs, labels
that look like something else, multi-file datasets, every text encoding."""

import hashlib
import json
import os
import shutil
import subprocess
from types import SimpleNamespace

import openslide
import pytest
import tifffile

from conftest import shared_fixture
from paw.formats import prepare
from paw.formats.tifftags import Tag, Type
from synth import ACCESSION, LABEL_TEXT, OPERATOR, PATIENT, SERIAL, stripped, tiled
from synth import ome as synth
from test_tiff_hostile import ENCODINGS, FORMS, NAME, _segment, jpeg_tile_bytes, outcome, plant

OPTIONS = SimpleNamespace(keep_macro=False, full_scan=False)
FULL = SimpleNamespace(keep_macro=False, full_scan=True)
FIXTURE = ("ome-tiff", "CMU-1-Small-Region.bfconvert.ome.tiff")
# What the fixture's OME-XML carries from the Aperio original (its OriginalMetadata, dates,
# the conversion's file name and UUID): none of it may leave.
FIXTURE_VALUES = ["CMU-1-Small-Region.bfconvert.ome.tiff", "b414003d-95c6-48b0-9369-8010ed517ba7",
                  "CPAPERIOCS", "1004486", "12/29/09", "09:59:15", "2009-12-29",
                  "202a76fa-8271-4141-94d0-7ebed5f70f71", "Series 0 Filename", "23.449873",
                  "Aperio Image Library v11.2.1"]
BIOFORMATS = os.environ.get("PAW_BIOFORMATS_JAR", "/opt/bioformats/bioformats_package.jar")
needs_bioformats = pytest.mark.skipif(not (shutil.which("java") and os.path.exists(BIOFORMATS)),
                                      reason="Bio-Formats (java + bioformats_package.jar, see .ci/run) not installed")


def bioformats(path):
    """Bio-Formats' ImageInfo: core metadata per series, global metadata and the OME-XML."""
    return subprocess.run(["java", "-cp", BIOFORMATS, "loci.formats.tools.ImageInfo", "-nopix", "-omexml",
                           "-no-upgrade", "-noflat", path], capture_output=True, text=True, timeout=300).stdout


def levels(path):
    """tifffile's view: is it OME, and per series (name, shape of each level, SHA-256 of each
    level's raw tiles). tifffile cannot decode the fixture's planar YCbCr JPEG tiles (nor can
    OpenSlide): the stored tile bytes are compared instead."""
    view = []
    with tifffile.TiffFile(path) as tf, open(path, "rb") as fh:
        for series in tf.series:
            shapes, digests = [], []
            for level in series.levels:
                digest = hashlib.sha256()
                for page in level.pages:
                    for offset, count in zip(page.dataoffsets, page.databytecounts):
                        fh.seek(offset)
                        digest.update(fh.read(count))
                shapes.append(level.shape)
                digests.append(digest.hexdigest())
            view.append((series.name, shapes, digests))
        return tf.is_ome, view


def slide_view(path):
    slide = openslide.OpenSlide(path)
    try:
        keys = ("openslide.vendor", "openslide.mpp-x", "openslide.mpp-y", "openslide.level-count")
        return {k: slide.properties.get(k) for k in keys}, slide.level_dimensions, sorted(slide.associated_images)
    finally:
        slide.close()


def description(path):
    with tifffile.TiffFile(path) as tf:
        return tf.pages[0].description


def copy_fixture(folder, name=None):
    path = os.path.join(str(folder), name or FIXTURE[1])
    shutil.copyfile(shared_fixture(*FIXTURE), path)
    os.chmod(path, 0o644)
    return path


# --- the real file -------------------------------------------------------------------------------

def test_real_ome_tiff_reaches_the_outbox_with_its_pyramid_and_without_its_metadata(lab):
    source = copy_fixture(lab.base)
    is_ome, before = levels(source)
    props, dims, associated = slide_view(source)
    assert is_ome and len(before) == 1 and len(before[0][1]) == 3
    with open(source, "rb") as fh:
        data = fh.read()
    assert all(v.encode() in data for v in FIXTURE_VALUES)  # they are there to be removed
    os.rename(source, os.path.join(lab.inbox, FIXTURE[1]))
    assert lab.run() == 0
    row = lab.rows()[0]
    assert row["status"] == "anonymized", row
    output = os.path.join(lab.outbox, row["output"])
    is_ome, after = levels(output)
    assert is_ome and [(shapes, digests) for _, shapes, digests in after] == \
        [(shapes, digests) for _, shapes, digests in before]  # three levels, tiles byte for byte
    assert slide_view(output) == (props, dims, associated)
    with open(output, "rb") as fh:
        data = fh.read()
    assert [v for v in FIXTURE_VALUES if v.encode() in data] == []
    xml = description(output)
    assert 'PhysicalSizeX="0.499" PhysicalSizeXUnit="µm"' in xml and 'NominalMagnification="20.0"' in xml
    assert "StructuredAnnotations" not in xml and "<UUID" not in xml and "<!--" not in xml
    assert "StructuredAnnotations" in row["removed"] and "AcquisitionDate" in row["removed"]


def test_real_ome_tiff_passes_the_full_scan(tmp_path):
    """verify.full_scan walks every tile of every level (their JPEG headers) and searches the
    whole file, tiles included, for the removed values."""
    path = copy_fixture(tmp_path, "slide.ome.tiff")
    result, reason, plan = outcome(path, FULL, extra=FIXTURE_VALUES)
    assert result == "delivered", reason


@needs_bioformats
def test_bioformats_reads_the_real_file_as_before_minus_its_metadata(tmp_path):
    path = copy_fixture(tmp_path, "slide.ome.tiff")  # Bio-Formats prints the file's path
    before = bioformats(path)
    assert "Series count = 1" in before and "Resolutions = 3" in before
    assert "Series 0 Filename: CMU-1" in before and "<AcquisitionDate>" in before
    _, plan, _ = prepare(path, OPTIONS)
    plan.apply(path)
    after = bioformats(path)
    assert "Series count = 1" in after and "Resolutions = 3" in after and "No validation errors found" in after
    for line in ("Width = 2220", "Height = 2967", "Tile size = 256 x 256", "Pixel type = uint8"):
        assert line in after
    assert 'PhysicalSizeX="0.499"' in after and 'NominalMagnification="20.0"' in after
    assert [v for v in FIXTURE_VALUES if v in after] == [] and "Series 0" not in after


# --- synthetic slide-scanner conversions: label and macro as OME Images ---------------------------

def test_label_and_macro_images_are_destroyed_and_the_pyramid_kept(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    planted = synth.write(path)
    is_ome, before = levels(path)
    assert is_ome and [name for name, _, _ in before][1:] == ["label image", "macro image"]
    assert slide_view(path)[2] == []  # OpenSlide never showed them: tifffile and Bio-Formats do
    result, reason, plan = outcome(path, extra=planted)
    assert result == "delivered", reason
    is_ome, after = levels(path)
    assert is_ome and len(after) == 1 and after[0][1:] == before[0][1:]
    with open(path, "rb") as fh:
        data = fh.read()
    assert LABEL_TEXT not in data and [v for v in planted if v.encode() in data] == []
    assert "label image destroyed" in plan.actions and "macro image destroyed" in plan.actions
    props, _, associated = slide_view(path)
    assert props["openslide.vendor"] == "generic-tiff" and associated == []


@needs_bioformats
def test_bioformats_lists_label_and_macro_before_and_not_after(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    planted = synth.write(path)
    before = bioformats(path)
    assert "Series count = 3" in before and 'Name="label image"' in before and 'Name="macro image"' in before
    assert PATIENT in before and OPERATOR in before
    result, reason, _ = outcome(path, extra=planted)
    assert result == "delivered", reason
    after = bioformats(path)
    assert "Series count = 1" in after and "Resolutions = 3" in after and "No validation errors found" in after
    assert "label image" not in after and "macro image" not in after
    assert [v for v in planted if v in after] == []


@needs_bioformats
def test_destroyed_directory_before_kept_planes_renumbers_tiff_data(tmp_path):
    """A three-channel image with a plane per directory (each with its own pyramid) and the label
    stored between them: the label goes, the planes' TiffData IFD numbers follow."""
    path = str(tmp_path / "channels.ome.tiff")

    def xml(file_uuid, images):
        pixels = ('<Pixels BigEndian="false" DimensionOrder="XYCZT" ID="Pixels:0" Interleaved="true" '
                  'SignificantBits="8" SizeC="3" SizeT="1" SizeX="1024" SizeY="768" SizeZ="1" Type="uint8">'
                  + "".join(f'<Channel ID="Channel:0:{c}" Name="{n}" SamplesPerPixel="1" EmissionWavelength="{w}" '
                            f'EmissionWavelengthUnit="nm"/>' for c, n, w in ((0, "DAPI", 461), (1, "AF488", 520),
                                                                             (2, "Alexa Fluor 647", 665)))
                  + '<TiffData FirstC="0" FirstT="0" FirstZ="0" IFD="0" PlaneCount="1"/>'
                  + '<TiffData FirstC="1" FirstT="0" FirstZ="0" IFD="2" PlaneCount="2"/></Pixels>')
        label = synth.image_xml(1, "label image", 300, 200, 1, file_uuid, uuid_element=False)
        return synth.ome_xml([f'<Image ID="Image:0" Name="{PATIENT}">{pixels}</Image>', label], file_uuid)

    gray = {Tag.BITS_PER_SAMPLE: (Type.SHORT, 8), Tag.SAMPLES_PER_PIXEL: (Type.SHORT, 1),
            Tag.PHOTOMETRIC: (Type.SHORT, 1)}
    planes = [synth.pyramid(1024, 768, gray, gray) for _ in range(2)]
    synth.write(path, xml=xml, macro=False, tags=gray, sub_tags=gray, extra_images=planes)
    result, reason, plan = outcome(path)
    assert result == "delivered", reason
    text = description(path)
    assert 'IFD="0" PlaneCount="1"' in text and 'IFD="1" PlaneCount="2"' in text and PATIENT not in text
    assert 'Name="Alexa Fluor 647"' in text and 'EmissionWavelength="665"' in text
    after = bioformats(path)
    assert "Series count = 1" in after and "SizeC = 3" in after and "Resolutions = 3" in after
    with tifffile.TiffFile(path) as tf:
        assert len(tf.pages) == 3 and all(len(page.subifds) == 2 for page in tf.pages)
        assert tf.series[0].shape == (3, 768, 1024)


def test_ome_tiff_written_by_tifffile_is_delivered(tmp_path):
    """Another writer's layout: SubIFDs typed IFD and not chained, a time-based (uuid1) UUID, the
    image named by the caller, a stripped label series; its own reader sees one series after."""
    import numpy as np
    path = str(tmp_path / "tf.ome.tif")
    data = (np.arange(768 * 1024 * 3, dtype=np.uint32) % 251).astype(np.uint8).reshape(768, 1024, 3)
    with tifffile.TiffWriter(path, ome=True) as tw:
        options = {"tile": (256, 256), "compression": "zlib", "photometric": "rgb"}
        tw.write(data, subifds=2, metadata={"axes": "YXS", "Name": f"{ACCESSION} {PATIENT}",
                                            "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25}, **options)
        tw.write(data[::2, ::2], subfiletype=1, **options)
        tw.write(data[::4, ::4], subfiletype=1, **options)
        tw.write(data[:200, :300], metadata={"Name": "label image"}, photometric="rgb")
    result, reason, plan = outcome(path, extra=[ACCESSION, PATIENT])
    assert result == "delivered", reason
    with tifffile.TiffFile(path) as tf:
        assert [(s.name, len(s.levels)) for s in tf.series] == [("Baseline", 3)]
        assert (tf.series[0].levels[2].asarray() == data[::4, ::4]).all()  # tifffile decodes these


def test_plan_round_trips_through_the_journal(tmp_path):
    from paw import formats
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path)
    plan = formats.identify(path).plan(path, OPTIONS).plan
    data = json.loads(json.dumps(plan.to_json()))
    assert json.loads(json.dumps(formats.plan_from_json("ome-tiff", data).to_json())) == data


@pytest.mark.parametrize("variant", ["bigtiff", "big-endian", "unchained SubIFDs", "no label or macro",
                                     "no XML declaration or comment", "tifffile's creator"])
def test_layouts_writers_use_are_delivered(tmp_path, variant):
    path = str(tmp_path / "scan.ome.tiff")
    options = {"bigtiff": {"bigtiff": True}, "big-endian": {"byteorder": ">"},
               "unchained SubIFDs": {"chain": False}, "no label or macro": {"label": False, "macro": False},
               "no XML declaration or comment": {"xml": lambda u, images: synth.ome_xml(images, u, comment=False)
                                                 .replace('<?xml version="1.0" encoding="UTF-8"?>', "")},
               "tifffile's creator": {"xml": lambda u, images: synth.ome_xml(images, u)
                                      .replace("OME Bio-Formats 7.3.1", "tifffile.py 2026.3.3")}}[variant]
    planted = synth.write(path, **options)
    result, reason, _ = outcome(path, extra=planted)
    assert result == "delivered", reason
    is_ome, view = levels(path)
    assert is_ome and len(view) == 1 and len(view[0][1]) == 3


# --- hostile: identifiers in every place of the OME-XML ------------------------------------------

def _xml_with(old, new):
    """An `xml` for synth.write: the default document with `old` replaced by `new` (bytes are
    decoded as Latin-1 so that any byte can be planted; written back as the same bytes)."""
    def xml(file_uuid, images):
        text = synth.ome_xml(images, file_uuid).encode("utf-8")
        assert old.encode() in text, old
        return text.replace(old.encode(), new, 1)
    return xml


# Places in the document and what to put there; the name is planted into the value given.
XML_PLACES = {
    "Experimenter": ('UserName="jsmith-paw-operator"', 'UserName="{}"'),
    "Image Name": (f'Name="{synth.FILE_NAME}"', 'Name="{}"'),
    "AcquisitionDate": ("<AcquisitionDate>2026-11-20T14:32:07<", "<AcquisitionDate>{}<"),
    "Description": ("<Description>Aperio Image Library v11.2.1<", "<Description>{}<"),
    "OriginalMetadata value": (f"<Value>{OPERATOR}</Value>", "<Value>{}</Value>"),
    "OriginalMetadata key": ("<Key>Series 0 User</Key>", "<Key>{}</Key>"),
    "MapAnnotation": ('<M K="1">512 384</M>', '<M K="{}">512 384</M>'),
    "CommentAnnotation": (f"<Value>case {ACCESSION}", "<Value>{}"),
    "Objective Model": (f'Model="{PATIENT}"', 'Model="{}"'),
    "Microscope serial": (f'SerialNumber="{SERIAL}"', 'SerialNumber="{}"'),
    "UUID FileName": (f'<UUID FileName="{synth.FILE_NAME}"', '<UUID FileName="{}"'),
    "Channel Name": ('<Channel ID="Channel:0:0"', '<Channel ID="Channel:0:0" Name="{}"'),
    "Channel Fluor": ('<Channel ID="Channel:0:0"', '<Channel ID="Channel:0:0" Fluor="DAPI {}"'),
    "unknown attribute on Pixels": ('<Pixels BigEndian', '<Pixels Owner="{}" BigEndian'),
    "kept number with text": ('NominalMagnification="20.0"', 'NominalMagnification="20.{}"'),
    "comment inside": ("<Instrument ", "<!-- {} --><Instrument "),
    "processing instruction": ("<Instrument ", "<?paw {}?><Instrument "),
    "CDATA in Pixels": ("<Plane ", "<![CDATA[{}]]><Plane "),
    "text between elements": ("<InstrumentRef ", "{}<InstrumentRef "),
    "custom namespace element": ("<Instrument ", '<x:Case xmlns:x="urn:paw-test">{}</x:Case><Instrument '),
    "custom namespace attribute": ("<Image ID=\"Image:0\"", '<Image xmlns:x="urn:paw" x:case="{}" ID="Image:0"'),
    "root attribute": ('Creator="OME Bio-Formats 7.3.1"', 'Creator="OME Bio-Formats 7.3.1 {}"'),
    "BinData in an annotation": ("</StructuredAnnotations>",
                                 '<FileAnnotation ID="Annotation:91"><BinaryFile FileName="{}" Size="4">'
                                 '<BinData BigEndian="false" Length="4">T0tPTg==</BinData></BinaryFile>'
                                 "</FileAnnotation></StructuredAnnotations>"),
    "StageLabel": ("<InstrumentRef ", '<StageLabel Name="{}" X="1"/><InstrumentRef '),
    "ROI": ("<StructuredAnnotations>", '<ROI ID="ROI:0"><Union><Label ID="Shape:0" Text="{}" X="1" Y="1"/>'
                                       "</Union></ROI><StructuredAnnotations>"),
}


MIXED = "OME-XML Pixels PhysicalSizeXUnit"  # Latin-1 bytes in UTF-8 XML: read as Latin-1, µm is no unit


@pytest.mark.parametrize("place", sorted(XML_PLACES))
@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "utf-8"])
def test_name_anywhere_in_the_ome_xml_is_removed(tmp_path, place, encoding):
    """Delivered without it; a Latin-1 name inside the UTF-8 document makes the whole text read as
    Latin-1, and then the micro sign of a unit is not a unit: refused, naming the unit."""
    old, new = XML_PLACES[place]
    prefix, suffix = new.split("{}")
    value = prefix.encode() + ENCODINGS[encoding] + suffix.encode()
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=_xml_with(old, value))
    result, reason, plan = outcome(path)
    if encoding == "latin-1":
        assert result == "quarantined" and MIXED in reason
    else:
        assert result == "delivered", reason
        assert not any(form in description(path).encode() for form in FORMS)


@pytest.mark.parametrize("position", ["start", "middle", "end"])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_name_at_every_position_of_a_kept_value(tmp_path, position, encoding):
    """In a kept attribute paw types (the channel name): whatever the position and encoding the
    value loses its type and goes (UTF-16's NUL ends the description inside the XML: refused)."""
    raw = plant("DAPI", position, encoding)
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=_xml_with('<Channel ID="Channel:0:0"', b'<Channel ID="Channel:0:0" Name="' + raw + b'"'))
    result, reason, _ = outcome(path)
    if encoding.startswith("utf-16"):
        assert result == "quarantined" and "does not end with its OME element" in reason
    elif encoding == "latin-1":
        assert result == "quarantined" and MIXED in reason
    else:
        assert result == "delivered", reason
        assert 'Name="DAPI"' not in description(path)


@pytest.mark.parametrize("attribute, value", [("PhysicalSizeX", '0.4{}99'), ("PhysicalSizeXUnit", "µm{}"),
                                              ("SizeX", "1024{}"), ("ID", "Pixels:{}")])
def test_required_value_with_a_name_refuses_the_slide(tmp_path, attribute, value):
    """A value a reader needs (geometry, units, ids) that is not its type is not cut (that would
    change the slide's meaning): the slide is refused, naming the field."""
    path = str(tmp_path / "scan.ome.tiff")
    old = {"PhysicalSizeX": 'PhysicalSizeX="0.499"', "PhysicalSizeXUnit": 'PhysicalSizeXUnit="µm"',
           "SizeX": 'SizeX="1024"', "ID": 'ID="Pixels:0"'}[attribute]
    synth.write(path, xml=_xml_with(old, f'{attribute}="{value.format(NAME)}"'.encode()))
    result, reason, _ = outcome(path)
    assert result == "quarantined" and attribute in reason and ("Pixels" in reason or "Image 0" in reason)


@pytest.mark.parametrize("attribute", ["SizeC", "DimensionOrder"])
def test_pixels_without_a_required_attribute_refuse_the_slide(tmp_path, attribute):
    """Cutting an unknown attribute must not leave Pixels without what readers need (tifffile's
    OME reader fails without SizeC): a Pixels without it is refused, naming it."""
    path = str(tmp_path / "scan.ome.tiff")
    old = {"SizeC": ' SizeC="3"', "DimensionOrder": ' DimensionOrder="XYCZT"'}[attribute]
    synth.write(path, xml=_xml_with(old, old.replace(attribute, "Owner").encode()))
    result, reason, _ = outcome(path)
    assert result == "quarantined" and f"Pixels without {attribute}" in reason


def test_pixels_inside_the_xml_refuse_the_slide(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=_xml_with("<Plane ", b'<BinData BigEndian="false" Length="8">T0tPTktXTw==</BinData><Plane '))
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "BinData" in reason


def test_whole_xml_in_latin_1_is_delivered_clean(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=lambda u, images: synth.ome_xml(images, u).replace(PATIENT, "MÜLLER^JÖRG-ÅSA")
                .encode("latin-1"))
    result, reason, _ = outcome(path)
    assert result == "delivered", reason
    assert 'PhysicalSizeXUnit="µm"' in description(path)  # Latin-1 µ written back as it was


def test_whole_xml_in_utf_16_is_refused(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=lambda u, images: synth.ome_xml(images, u).encode("utf-16-le"))
    result, reason, _ = outcome(path)
    assert result == "quarantined"


def test_text_after_the_root_element_is_refused(tmp_path):
    """Not an OME-TIFF to tifffile (the description must end with the OME element) nor to
    Bio-Formats (the XML does not parse): refused, never treated as generic."""
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=lambda u, images: synth.ome_xml(images, u) + NAME)
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "does not end with its OME element" in reason


def test_text_after_the_descriptions_nul_is_removed(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=lambda u, images: synth.ome_xml(images, u).encode() + b"\0" + NAME.encode())
    result, reason, _ = outcome(path)
    assert result == "delivered", reason


# --- UUIDs and multi-file datasets ---------------------------------------------------------------

def test_uuid_is_replaced_and_file_references_go(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    original = "urn:uuid:0a0b0c0d-1111-4222-8333-444455556666"
    synth.write(path, file_uuid=original)
    result, reason, plan = outcome(path)
    assert result == "delivered", reason
    text = description(path)
    assert original not in text and "urn:uuid:" in text and "<UUID" not in text and "FileName" not in text
    assert original in plan.removed  # searched for in the whole file by verification


@pytest.mark.parametrize("reference", ["other file's UUID", "UUID without the root's"])
def test_multi_file_dataset_is_refused(tmp_path, reference):
    path = str(tmp_path / "scan.ome.tiff")
    if reference == "other file's UUID":
        xml = _xml_with(f'<UUID FileName="{synth.FILE_NAME}">',
                        b'<UUID FileName="part2.ome.tiff">urn:uuid:99999999-1111-4222-8333-444455556666</UUID><UUID>')
        xml_fn = xml
    else:
        def xml_fn(file_uuid, images):
            return synth.ome_xml(images, file_uuid).replace(f' UUID="{file_uuid}"', "", 1).encode()
    synth.write(path, xml=xml_fn)
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "multi-file OME-TIFF" in reason


def test_companion_binary_only_file_is_refused(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=_xml_with("<Experimenter ", b'<BinaryOnly MetadataFile="case.companion.ome" '
                                                      b'UUID="urn:uuid:99999999-1111-4222-8333-444455556666"/>'
                                                      b"<Experimenter "))
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "BinaryOnly" in reason


@pytest.mark.parametrize("head", ['<!DOCTYPE OME [<!ENTITY n "{}">]>', '<?xml-stylesheet href="{}"?>'])
def test_doctype_and_entities_are_refused_or_cut(tmp_path, head):
    """A DOCTYPE (entities could expand anywhere) refuses the slide; a processing instruction
    before the root is cut."""
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=lambda u, images: synth.ome_xml(images, u).replace(
        "<OME ", head.format(NAME) + "<OME ", 1).encode())
    result, reason, _ = outcome(path)
    if "DOCTYPE" in head:
        assert result == "quarantined" and "DOCTYPE" in reason
    else:
        assert result == "delivered", reason


def test_other_schema_versions_are_refused(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=lambda u, images: synth.ome_xml(images, u).replace("2016-06", "2015-01").encode())
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "schema other than 2016-06" in reason


# --- hostile: other tags, SubIFDs, tile headers --------------------------------------------------

TAG_PLACES = {
    "Software": (Tag.SOFTWARE, Type.ASCII, "OME Bio-Formats 7.3.1 {}"),
    "DateTime": (Tag.DATE_TIME, Type.ASCII, "{}"),
    "Artist": (Tag.ARTIST, Type.ASCII, "{}"),
    "HostComputer": (Tag.HOST_COMPUTER, Type.ASCII, "{}"),
    "DocumentName": (Tag.DOCUMENT_NAME, Type.ASCII, "{}.ome.tiff"),
    "XMP": (Tag.XMP, Type.BYTE, '<x:xmpmeta xmlns:x="adobe:ns:meta/">{}</x:xmpmeta>'),
    "private tag": (65000 + 77, Type.UNDEFINED, "{}"),
}


def _two_planes(plane_tags=None):
    """Options for synth.write: a two-plane (z) image whose second plane, directory 1, is a
    pyramid of its own carrying `plane_tags`."""
    def xml(file_uuid, images):
        return synth.ome_xml(images, file_uuid).replace('SizeZ="1"', 'SizeZ="2"', 1).replace(
            'IFD="0" PlaneCount="1"', 'IFD="0" PlaneCount="2"', 1)
    return {"label": False, "macro": False, "xml": xml,
            "extra_images": [synth.pyramid(1024, 768, plane_tags, plane_tags)]}


@pytest.mark.parametrize("place", sorted(TAG_PLACES))
@pytest.mark.parametrize("where", ["directory 0", "SubIFD", "plane 1"])
@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "utf-16le"])
def test_name_in_other_tags_goes(tmp_path, place, where, encoding):
    tag, kind, text = TAG_PLACES[place]
    prefix, suffix = text.split("{}")
    tags = {tag: (kind, prefix.encode() + ENCODINGS[encoding] + suffix.encode())}
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, **({"tags": tags} if where == "directory 0" else {"sub_tags": tags} if where == "SubIFD"
                         else _two_planes(tags)))
    result, reason, plan = outcome(path)
    assert result == "delivered", reason
    if where == "plane 1":
        with tifffile.TiffFile(path) as tf:
            assert len(tf.pages) == 2 and tf.series[0].shape[0] == 2


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_name_in_a_subifd_description_goes(tmp_path, encoding):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, sub_tags={Tag.IMAGE_DESCRIPTION: (Type.ASCII, synth.IMAGEJ.encode() + b"\nname="
                                                        + ENCODINGS[encoding])})
    result, reason, plan = outcome(path)
    assert result == "delivered", reason
    assert "ImageDescription removed (not directory 0)" in plan.actions


def test_structural_subifd_tag_holding_text_refuses_the_slide(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, sub_tags={Tag.TILE_WIDTH: (Type.ASCII, NAME)})
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "directory 0 SubIFD 1" in reason


def test_subifd_that_is_not_a_pyramid_level_refuses_the_slide(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, sub_tags={Tag.IMAGE_WIDTH: (Type.LONG, 700)})
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "is not a pyramid level" in reason


def _hidden_next_directory(tmp_path, path):
    """Write a synthetic slide to `path` whose last SubIFD's next pointer leads to a directory no
    SubIFDs tag lists, one that holds the name."""
    import struct

    from synth.tiffwriter import write_tiff
    synth.write(path, levels=2, label=False, macro=False)
    other = str(tmp_path / "hidden.tif")
    write_tiff(other, [stripped({Tag.IMAGE_DESCRIPTION: (Type.ASCII, NAME)}, 64, 64)])
    with open(path, "rb") as fh:
        data = bytearray(fh.read())
    with open(other, "rb") as fh:
        blob = fh.read()
    (table,) = struct.unpack("<I", blob[4:8])
    at = len(data) + 8 - len(data) % 8
    data += bytes(at - len(data)) + blob  # appended whole; its table is what the pointer leads to
    with tifffile.TiffFile(path) as tf:
        last = tf.pages[0].subifds[-1]
    (count,) = struct.unpack_from("<H", data, last)
    data[last + 2 + 12 * count:last + 6 + 12 * count] = struct.pack("<I", at + table)
    with open(path, "wb") as fh:
        fh.write(bytes(data))


def test_subifd_next_pointer_to_a_hidden_directory_refuses_the_slide(tmp_path):
    """libtiff would follow the pointer, tifffile would not: refused before editing."""
    path = str(tmp_path / "scan.ome.tiff")
    _hidden_next_directory(tmp_path, path)
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "SubIFD 2: its next pointer leads outside the SubIFDs list" in reason


def test_check_sees_a_subifd_next_pointer_the_parser_did_not(tmp_path):
    """The check reads the next pointers itself (not through paw's parser)."""
    from paw.formats import ome
    path = str(tmp_path / "scan.ome.tiff")
    _hidden_next_directory(tmp_path, path)
    with tifffile.TiffFile(path) as tf:
        problems = ome.check(tf, OPTIONS)
    assert "directory 0 SubIFD 2: its next pointer leads outside the SubIFDs" in problems


@pytest.mark.parametrize("sizes", [[(256, 192), (512, 384)], [(512, 384), (512, 384)]],
                         ids=["smallest first", "a level twice"])
def test_subifds_out_of_order_refuse_the_slide(tmp_path, sizes):
    path = str(tmp_path / "scan.ome.tiff")
    image = synth.pyramid(1024, 768)
    image.subifds = [tiled({Tag.NEW_SUBFILE_TYPE: (Type.SHORT, 1)}, w, h, 1) for w, h in sizes]
    from synth.tiffwriter import write_tiff
    u = "urn:uuid:0a0b0c0d-1111-4222-8333-444455556666"
    image.tags[Tag.IMAGE_DESCRIPTION] = (Type.ASCII, synth.ome_xml([synth.image_xml(0, "", 1024, 768, 0, u)], u))
    write_tiff(path, [image])
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None and "SubIFD 2 is not a pyramid level" in reason


def test_nested_subifds_refuse_the_slide(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    level = synth.pyramid(512, 384)
    image = synth.pyramid(1024, 768, levels=1)
    image.subifds = [level]
    from synth.tiffwriter import write_tiff
    u = "urn:uuid:0a0b0c0d-1111-4222-8333-444455556666"
    image.tags[Tag.IMAGE_DESCRIPTION] = (Type.ASCII, synth.ome_xml([synth.image_xml(0, "", 1024, 768, 0, u)], u))
    write_tiff(path, [image])
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "SubIFDs of its own" in reason


@pytest.mark.parametrize("tile", [0, 3], ids=["first", "last"])
def test_text_in_a_subifd_tile_header_refuses_before_editing(tmp_path, tile):
    """SubIFD tiles are kept pixels like level 0's: their JPEG headers are sampled too."""
    from synth.tiffwriter import write_tiff
    path = str(tmp_path / "scan.ome.tiff")
    plain = jpeg_tile_bytes()
    level = synth.pyramid(1024, 768)
    for image in [level, *level.subifds]:
        image.tags[Tag.COMPRESSION] = (Type.SHORT, 7)
        image.chunks = [plain] * len(image.chunks)
    level.subifds[0].chunks[tile] = plain[:2] + _segment(0xFE, NAME.encode()) + plain[2:]
    u = "urn:uuid:0a0b0c0d-1111-4222-8333-444455556666"
    level.tags[Tag.IMAGE_DESCRIPTION] = (Type.ASCII, synth.ome_xml([synth.image_xml(0, "", 1024, 768, 0, u)], u))
    write_tiff(path, [level])
    result, reason, plan = outcome(path)
    assert result == "quarantined" and plan is None
    assert f"directory 0 SubIFD 1 tile {tile}: JPEG COM segment" in reason


# --- hostile: labels that do not say so ---------------------------------------------------------

def _label_named(name):
    return _xml_with('Name="label image"', f'Name="{name}"'.encode())


@pytest.mark.parametrize("name", ["image 1", "Image:1", "", "Series 1"])
def test_label_named_like_an_image_is_destroyed_by_structure(tmp_path, name):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=_label_named(name))
    result, reason, plan = outcome(path)
    assert result == "delivered", reason
    assert "image series that is not the slide's pyramid destroyed" in plan.actions
    assert LABEL_TEXT not in open(path, "rb").read()


@pytest.mark.parametrize("name", ["label image", "image 1"])
def test_label_stored_as_a_pyramid_is_destroyed(tmp_path, name):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, label_image=synth.tiled_label(levels=1), xml=_label_named(name))
    result, reason, plan = outcome(path)
    assert result == "delivered", reason
    assert LABEL_TEXT not in open(path, "rb").read()
    is_ome, view = levels(path)
    assert len(view) == 1 and len(view[0][1]) == 3


def test_label_in_a_directory_no_image_lists_is_destroyed(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, label=False, macro=False, extra_images=[stripped({}, 300, 200)])
    result, reason, plan = outcome(path)
    assert result == "delivered", reason
    assert "directory no OME-XML Image lists destroyed" in plan.actions
    assert LABEL_TEXT not in open(path, "rb").read()


def test_label_as_the_first_image_is_refused(tmp_path):
    """The first directory holds the OME-XML; an Image there named as a label is refused."""
    path = str(tmp_path / "scan.ome.tiff")

    def xml(file_uuid, images):
        return synth.ome_xml(images, file_uuid).replace(f'Name="{synth.FILE_NAME}"', 'Name="label"', 1).encode()
    synth.write(path, xml=xml)
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "named as a label" in reason


def test_label_image_sharing_a_directory_with_the_slide_is_refused(tmp_path):
    """The slide's Image claims the label's directory too: whose is it? Refused."""
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, macro=False, xml=_xml_with('IFD="0" PlaneCount="1"', b'IFD="0" PlaneCount="2"'))
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "Image 1 shares directories with the slide's image" in reason


def test_label_listed_as_a_plane_of_the_slide_is_refused(tmp_path):
    """The kept Image claims the label's directory as its second plane: not a tiled image of
    its size, refused."""
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, label=False, macro=False, extra_images=[stripped({}, 1024, 768)],
                xml=_xml_with('IFD="0" PlaneCount="1"', b'IFD="0" PlaneCount="2"'))
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "directory 1 is not tiled" in reason


# --- the audit is independent of the scrubber ----------------------------------------------------

def _plan_with(monkeypatch, path, method, replacement):
    """A plan made by a scrubber with `method` of ome.Scrub replaced, applied to `path`; the
    check's problems (made with the real code)."""
    from paw.formats import ome, tiffhandler
    monkeypatch.setattr(ome.Scrub, method, replacement(getattr(ome.Scrub, method)))
    handler = tiffhandler.TiffHandler(ome)
    plan = handler.plan(path, OPTIONS).plan
    monkeypatch.undo()
    plan.apply(path)
    return handler.check(path, plan, OPTIONS)


def test_audit_catches_an_attribute_a_broken_scrubber_keeps(tmp_path, monkeypatch):
    """If the scrubber forgot to cut an attribute (here: every attribute of Objective stays),
    the audit names the field from the allow-list, never the value."""
    def forgetful(real):
        def attribute(self, element, rule, attribute):
            return None if element.name == "Objective" else real(self, element, rule, attribute)
        return attribute
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path)
    problems = _plan_with(monkeypatch, path, "_attribute", forgetful)
    assert any("Objective: an attribute the allow-list does not know" in p for p in problems), problems
    assert not any(PATIENT in p or SERIAL in p for p in problems)


def test_audit_catches_an_element_a_broken_scrubber_keeps(tmp_path, monkeypatch):
    """A scrubber that keeps the annotations: the audit refuses their elements."""
    def forgetful(real):
        def cut(self, element):
            if element.name != "StructuredAnnotations":
                real(self, element)
        return cut
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path)
    problems = _plan_with(monkeypatch, path, "_cut_element", forgetful)
    assert any("an element the allow-list does not know" in p for p in problems), problems
    assert not any(OPERATOR in p for p in problems)


def test_audit_catches_a_label_image_a_broken_scrubber_keeps(tmp_path, monkeypatch):
    """A scrubber that leaves the label's Image element in the XML (its directory destroyed):
    the check sees two images."""
    def forgetful(real):
        def cut(self, element):
            if element.name != "Image":
                real(self, element)
        return cut
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, macro=False)
    problems = _plan_with(monkeypatch, path, "_cut_element", forgetful)
    assert "the OME-XML has 2 images, not the slide's one" in problems


def test_audit_catches_a_description_a_broken_scrubber_leaves_in_a_subifd(tmp_path, monkeypatch):
    """A scrubber that shortens a SubIFD's description instead of dropping it: only directory 0
    may have one."""
    from paw.formats import ome, tiffhandler
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path)
    monkeypatch.setattr(ome, "_drop_description", lambda surgery, directory: surgery.replace_ascii(
        directory, Tag.IMAGE_DESCRIPTION, "ImageJ=", []) if Tag.IMAGE_DESCRIPTION in directory.entries else None)
    handler = tiffhandler.TiffHandler(ome)
    plan = handler.plan(path, OPTIONS).plan
    monkeypatch.undo()
    plan.apply(path)
    problems = handler.check(path, plan, OPTIONS)
    assert "directory 0 SubIFD 1 ImageDescription: only directory 0 may have a description" in problems


def test_huge_plane_count_is_refused_without_counting(tmp_path):
    path = str(tmp_path / "scan.ome.tiff")
    synth.write(path, xml=_xml_with('IFD="0" PlaneCount="1"', b'IFD="0" PlaneCount="999999999999"'))
    result, reason, _ = outcome(path)
    assert result == "quarantined" and "refers to directories that do not exist" in reason


def test_mutated_ome_tiff_is_refused_or_clean(tmp_path):
    """Random overwrites of the structure and the OME-XML of a synthetic conversion (bytes, and
    planted names at random places): each ends refused with a one-line reason, or verified with
    no planted name outside the kept tiles; never an exception of another kind."""
    import random

    from paw import formats
    from paw.errors import SlideRefused
    from paw.verify import verify
    source = str(tmp_path / "source.ome.tiff")
    planted = [v for v in synth.write(source) if len(v) >= 6]
    with tifffile.TiffFile(source) as tf:
        structure_end = min(int(tf.pages[0].dataoffsets[0]), *(int(p.dataoffsets[0]) for p in tf.pages))
    with open(source, "rb") as fh:
        original = fh.read()
    rng = random.Random(19)
    outcomes = {"refused": 0, "clean": 0}
    for trial in range(120):
        data = bytearray(original)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(structure_end)
            if rng.random() < 0.6:
                data[at:at + 4] = rng.randbytes(4)
            else:
                value = rng.choice(planted).encode()
                data[at:at + len(value)] = value
        path = str(tmp_path / f"m{trial}.ome.tiff")
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            handler = formats.identify(path)
            plan = handler.plan(path, OPTIONS).plan
            plan.apply(path)
            verify(path, handler, plan, OPTIONS, extra_values=planted)
        except SlideRefused as exc:
            assert "\n" not in str(exc) and not any(v in str(exc) for v in planted), trial
            outcomes["refused"] += 1
            continue
        with open(path, "rb") as fh:
            result = bytearray(fh.read())
        for offset, length in plan.kept_data:
            result[offset:offset + length] = bytes(length)
        assert not [v for v in planted if v.encode() in result or v.encode("utf-16-le") in result], trial
        outcomes["clean"] += 1
    assert outcomes["refused"] and outcomes["clean"], outcomes
