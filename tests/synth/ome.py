"""Synthetic OME-TIFF slide scans, as Bio-Formats' bfconvert writes them from a slide scanner's
file (all series, `-noflat`): directory 0 is the slide's level 0 with its pyramid in SubIFDs
(chained by next pointers), and the scanner's label and macro follow as directories 1 and 2,
each its own OME `Image` ("label image", "macro image"). The OME-XML carries what Bio-Formats
copies from the original: AcquisitionDate, Description, Image names, Plane stage positions,
UUID/FileName references, and every original key/value as OriginalMetadata annotations; plus,
for the tests, identifiers in every other place the schema has (Experimenter, instrument
serials, objective model, a MapAnnotation, a CommentAnnotation, custom namespaces). Written by
this module and tiffwriter.py alone (never paw's parser).
"""

import uuid

from paw.formats.tifftags import Tag, Type

from . import ACCESSION, DATETIME, HOST, OPERATOR, PATIENT, SERIAL, stripped, tiled
from .tiffwriter import Image, write_tiff

SCHEMA = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
COMMENT = ("<!-- Warning: this comment is an OME-XML metadata block, which contains crucial "
           "dimensional parameters and other important metadata. Please edit cautiously (if at "
           "all), and back up the original data before doing so. For more information, see the "
           "OME-TIFF web site: https://docs.openmicroscopy.org/latest/ome-model/ome-tiff/. -->")
FILE_NAME = f"{ACCESSION} {PATIENT}.ome.tiff"
ORIGINAL = {"Filename": f"{ACCESSION}.svs", "User": OPERATOR, "Date": "11/20/26", "ScanScope ID": SERIAL,
            "Patient": PATIENT, "AppMag": "20", "MPP": "0.4990"}
IMAGEJ = "ImageJ=\nhyperstack=true\nimages=3\nchannels=3\nslices=1\nframes=1"


def planted():
    return [PATIENT, ACCESSION, OPERATOR, SERIAL, DATETIME, HOST, FILE_NAME]


def _pixels(index, width, height, ifd, file_uuid, uuid_element=True, extra=""):
    reference = (f'<UUID FileName="{FILE_NAME}">{file_uuid}</UUID>' if uuid_element else "")
    return (f'<Pixels BigEndian="false" DimensionOrder="XYCZT" ID="Pixels:{index}" Interleaved="true" '
            f'PhysicalSizeX="0.499" PhysicalSizeXUnit="µm" PhysicalSizeY="0.499" PhysicalSizeYUnit="µm" '
            f'SignificantBits="8" SizeC="3" SizeT="1" SizeX="{width}" SizeY="{height}" SizeZ="1" Type="uint8">'
            f'<Channel ID="Channel:{index}:0" SamplesPerPixel="3"><LightPath/></Channel>'
            f'<TiffData FirstC="0" FirstT="0" FirstZ="0" IFD="{ifd}" PlaneCount="1">{reference}</TiffData>'
            f'<Plane PositionX="25.691574" PositionXUnit="mm" PositionY="23.449873" PositionYUnit="mm" '
            f'TheC="0" TheT="0" TheZ="0"/>{extra}</Pixels>')


def image_xml(index, name, width, height, ifd, file_uuid, description="", uuid_element=True,
              pixels_extra="", extra=""):
    return (f'<Image ID="Image:{index}" Name="{name}"><AcquisitionDate>2026-11-20T14:32:07</AcquisitionDate>'
            f'<ExperimenterRef ID="Experimenter:0"/>'
            f'<Description>{description}</Description><InstrumentRef ID="Instrument:0"/>'
            f'<ObjectiveSettings ID="Objective:0:0"/>{extra}'
            f'{_pixels(index, width, height, ifd, file_uuid, uuid_element, pixels_extra)}'
            f'<AnnotationRef ID="Annotation:0"/></Image>')


def ome_xml(images, file_uuid, comment=True, root_extra="", before_images="", after_images=""):
    """The OME document: `images` are image_xml strings; identifiers in the places Bio-Formats
    and other writers use."""
    annotations = "".join(
        f'<XMLAnnotation ID="Annotation:{n}" Namespace="openmicroscopy.org/OriginalMetadata"><Value>'
        f'<OriginalMetadata><Key>Series 0 {key}</Key><Value>{value}</Value></OriginalMetadata></Value>'
        f'</XMLAnnotation>' for n, (key, value) in enumerate(ORIGINAL.items()))
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{COMMENT if comment else ""}'
        f'<OME xmlns="{SCHEMA}" xmlns:xsi="{XSI}" Creator="OME Bio-Formats 7.3.1" UUID="{file_uuid}" '
        f'xsi:schemaLocation="{SCHEMA} {SCHEMA}/ome.xsd"{root_extra}>'
        f'<Experimenter ID="Experimenter:0" FirstName="Jane" LastName="{PATIENT}" UserName="{OPERATOR}" '
        f'Email="{OPERATOR}@example.org"/>'
        f'<Instrument ID="Instrument:0"><Microscope Manufacturer="Aperio" Model="ScanScope" '
        f'SerialNumber="{SERIAL}"/><Detector ID="Detector:0:0" SerialNumber="{SERIAL}" Model="{HOST}"/>'
        f'<Objective ID="Objective:0:0" Model="{PATIENT}" SerialNumber="{SERIAL}" LensNA="0.75" '
        f'NominalMagnification="20.0" Immersion="Air"/></Instrument>'
        f'{before_images}{"".join(images)}{after_images}'
        f'<StructuredAnnotations>{annotations}'
        f'<MapAnnotation ID="Annotation:Resolution:0" Namespace="openmicroscopy.org/PyramidResolution">'
        f'<Value><M K="1">512 384</M><M K="2">256 192</M></Value></MapAnnotation>'
        f'<CommentAnnotation ID="Annotation:90"><Value>case {ACCESSION} {PATIENT}</Value></CommentAnnotation>'
        f'</StructuredAnnotations></OME>')


def pyramid(width, height, tags=None, sub_tags=None, levels=2, chain=True, sparse=False):
    """Level 0 and `levels` SubIFDs, each half the previous, tiled like bfconvert's."""
    base = {Tag.SOFTWARE: (Type.ASCII, "OME Bio-Formats 7.3.1"), **(tags or {})}
    image = tiled(base, width, height, 0, sparse)
    image.subifds = [tiled({Tag.NEW_SUBFILE_TYPE: (Type.SHORT, 1), Tag.SOFTWARE: (Type.ASCII, "OME Bio-Formats 7.3.1"),
                            Tag.IMAGE_DESCRIPTION: (Type.ASCII, IMAGEJ), **(sub_tags or {})},
                           width >> k, height >> k, k, sparse) for k in range(1, levels + 1)]
    image.chain_subifds = chain
    return image


def write(path, width=1024, height=768, label=True, macro=True, xml=None, tags=None, sub_tags=None,
          label_image=None, extra_images=(), bigtiff=False, byteorder="<", levels=2, chain=True,
          file_uuid=None, sparse=False):
    """Write a synthetic OME-TIFF slide scan; return the planted identifiers. `xml(file_uuid,
    images)` may replace the document (text, or bytes written as they are; images: the default
    Image elements); `tags` go into
    directory 0, `sub_tags` into every SubIFD; `label_image` replaces the label directory;
    `extra_images` are appended to the chain."""
    file_uuid = file_uuid or f"urn:uuid:{uuid.uuid4()}"
    images = [image_xml(0, FILE_NAME, width, height, 0, file_uuid, "Aperio Image Library v11.2.1")]
    directories = []
    ifd = 1
    if label:
        images.append(image_xml(ifd, "label image", 300, 200, ifd, file_uuid, f"label 300x200 {PATIENT}"))
        directories.append(label_image or stripped({Tag.IMAGE_DESCRIPTION: (Type.ASCII, IMAGEJ),
                                                    Tag.DATE_TIME: (Type.ASCII, DATETIME)}, 300, 200))
        ifd += 1
    if macro:
        images.append(image_xml(ifd, "macro image", 600, 200, ifd, file_uuid, "macro 600x200"))
        directories.append(stripped({Tag.IMAGE_DESCRIPTION: (Type.ASCII, IMAGEJ)}, 600, 200))
        ifd += 1
    text = xml(file_uuid, images) if xml else ome_xml(images, file_uuid)
    first_tags = {Tag.IMAGE_DESCRIPTION: (Type.ASCII, text if isinstance(text, bytes) else text.encode()),
                  Tag.DATE_TIME: (Type.ASCII, DATETIME), Tag.ARTIST: (Type.ASCII, OPERATOR),
                  **(tags or {})}
    level0 = pyramid(width, height, first_tags, sub_tags, levels, chain, sparse)
    write_tiff(path, [level0, *directories, *extra_images], bigtiff=bigtiff, byteorder=byteorder)
    return planted()


def tiled_label(width=512, height=384, levels=1):
    """A label stored like a pyramid: tiled, its own SubIFDs shrinking by two (label pixels)."""
    from . import label_pixels
    image = tiled({Tag.IMAGE_DESCRIPTION: (Type.ASCII, IMAGEJ)}, width, height, 0)
    image.chunks = [label_pixels(256, 256)] * len(image.chunks)
    image.tags[Tag.COMPRESSION] = (Type.SHORT, 1)
    image.subifds = [Image({**image.tags, Tag.IMAGE_WIDTH: (Type.LONG, width >> k),
                            Tag.IMAGE_LENGTH: (Type.LONG, height >> k), Tag.NEW_SUBFILE_TYPE: (Type.SHORT, 1)},
                           [label_pixels(256, 256)] * (-(-(width >> k) // 256) * -(-(height >> k) // 256)),
                           tiled=True) for k in range(1, levels + 1)]
    return image
