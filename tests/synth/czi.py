"""Synthetic Zeiss CZI slide scans, written from the ZISRAW layout (libCZI CziStructs.h) by this
module alone (never paw's parser): a file header, a subblock directory, a metadata segment
with the identifying fields ZEN writes, subblocks with their own XML, and attachments as an
Axio Scan writes them: Thumbnail (JPEG), TimeStamps, EventList, and Label and SlidePreview,
each a whole nested CZI with its own metadata (Bio-Formats shows them as "label image" and
"macro image").
"""

import io
import struct
import uuid

import numpy as np

PLANTED = {"user": "JSMITH-CZI-USER", "path": "C:\\Users\\jsmith\\Slides\\PATIENT-4711.czi",
           "date": "2024-05-06T07:08:09.1234567Z", "name": "PATIENT-4711 biopsy",
           "serial": "SN-CZI-998877", "scene": "PATIENT-4711-SCENE", "event": "operator Jane Roe",
           "label": "LABEL-PATIENT-4711", "preview": "PREVIEW-PATIENT-4711"}


def segment(ident, data, used=None, allocated=None):
    """A segment: 32-byte header, data padded to a multiple of 32."""
    allocated = allocated if allocated is not None else -(-len(data) // 32) * 32
    return (ident.ljust(16, b"\0") + struct.pack("<qq", allocated, len(data) if used is None else used)
            + data.ljust(allocated, b"\0"))


def dv_entry(pixel_type, position, compression, dims):
    """A DirectoryEntryDV: dims is [(letter, start, size, stored size)]."""
    head = struct.pack("<2siqii6si", b"DV", pixel_type, position, 0, compression, bytes(6), len(dims))
    return head + b"".join(struct.pack("<4siifi", d.encode(), start, size, float(start), stored)
                           for d, start, size, stored in dims)


def metadata_xml(planted, width, height, channels=("DAPI",), extra=""):
    channel_xml = "".join(
        f'<Channel Id="Channel:{i}" Name="{name}"><ExcitationWavelength>353</ExcitationWavelength>'
        f"<EmissionWavelength>465</EmissionWavelength><Fluor>{name}</Fluor><PixelType>Gray8</PixelType>"
        f"<SerialNumber>{planted['serial']}</SerialNumber></Channel>" for i, name in enumerate(channels))
    return (
        "<ImageDocument>\r\n  <Metadata>\r\n    <Information>\r\n"
        f"      <Document><UserName>{planted['user']}</UserName><CreationDate>{planted['date']}</CreationDate>"
        f"<Name>{planted['name']}</Name><Title>{planted['name']}</Title><Comment>{planted['name']}</Comment>"
        f"<Description>{planted['name']}</Description></Document>\r\n"
        f"      <User Id=\"0\"><DisplayName>{planted['user']}</DisplayName></User>\r\n"
        f"      <Image><SizeX>{width}</SizeX><SizeY>{height}</SizeY><SizeC>{len(channels)}</SizeC>"
        f"<PixelType>Gray8</PixelType><AcquisitionDateAndTime>{planted['date']}</AcquisitionDateAndTime>"
        f"<Dimensions><Channels>{channel_xml}</Channels><S><Scenes><Scene Index=\"0\" Name=\"{planted['scene']}\">"
        f"<CenterPosition>1,2</CenterPosition></Scene></Scenes></S></Dimensions>"
        f"<ObjectiveSettings><ObjectiveRef Id=\"Objective:1\"/></ObjectiveSettings></Image>\r\n"
        f"      <Instrument><Microscopes><Microscope Id=\"Microscope:1\" Name=\"Axioscan 7\">"
        f"<SerialNumber>{planted['serial']}</SerialNumber></Microscope></Microscopes>"
        f"<Objectives><Objective Id=\"Objective:1\" Name=\"Plan-Apochromat 20x/0.8\"><LensNA>0.8</LensNA>"
        f"<NominalMagnification>20</NominalMagnification></Objective></Objectives></Instrument>\r\n"
        "    </Information>\r\n"
        "    <Scaling><Items><Distance Id=\"X\"><Value>2.2E-07</Value><DefaultUnitFormat>µm</DefaultUnitFormat>"
        "</Distance><Distance Id=\"Y\"><Value>2.2E-07</Value><DefaultUnitFormat>µm</DefaultUnitFormat></Distance>"
        "</Items></Scaling>\r\n"
        f"    <CustomAttributes><AuditTrail>&lt;Input&gt;{planted['path']}&lt;/Input&gt;</AuditTrail></CustomAttributes>\r\n"
        f"    <Experiment><ExperimentBlocks><AutoSave><StorageFolder>{planted['path']}</StorageFolder></AutoSave>"
        f"</ExperimentBlocks></Experiment>{extra}\r\n"
        "  </Metadata>\r\n</ImageDocument>")


def jpeg_bytes(array, comment=None):
    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(array).save(out, "JPEG", quality=90, **({"comment": comment} if comment else {}))
    return out.getvalue()


def text_image(text, width=256, height=96):
    """A grey image with `text` drawn in it (what a label photo shows)."""
    from PIL import Image, ImageDraw
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).text((8, 8), text, fill=0)
    return np.asarray(image)


def build(planted=None, tiles=2, tile=64, label=True, preview=True, thumbnail=True, timestamps=True,
          eventlist=True, subblock_xml=True, jpeg_tiles=False, extra_xml="", extra_segments=(),
          nested=True, deleted_payload=b"", channels=("DAPI",), encode=None, metadata=None,
          attachments=None):
    """The bytes of a CZI slide scan: `tiles` Gray8 subblocks of tile×tile in a row (mosaic M),
    with the given attachments; Label/SlidePreview are nested CZIs (or JPEGs with nested=False).
    `encode(index, pixels)` gives a subblock's (data, compression) instead (JPEG XR, a JPEG with
    something appended); `metadata(xml)` edits the metadata XML text; `timestamps` may be the
    TimeStamps payload itself; `attachments` are more (content type, name, payload)."""
    planted = dict(PLANTED, **(planted or {}))
    width, height = tile * tiles, tile
    rng = np.random.default_rng(7)
    pixels = [rng.integers(0, 255, (tile, tile), dtype=np.uint8) for _ in range(tiles)]
    text = metadata_xml(planted, width, height, channels, extra=extra_xml)
    metadata = (metadata(text) if metadata else text).encode("utf-8")
    # Layout: FILE, DIRECTORY, METADATA, SUBBLOCKs, ATTACHs, ATTDIR, extra segments.
    directory_size = -(-(128 + tiles * (32 + 20 * 4)) // 32) * 32
    metadata_segment = segment(b"ZISRAWMETADATA", struct.pack("<ii", len(metadata), 0).ljust(256, b"\0") + metadata)
    position = 32 + 512 + 32 + directory_size
    metadata_at = position
    position += len(metadata_segment)
    blocks, entries = [], []
    for i, tile_pixels in enumerate(pixels):
        if encode:
            data, compression = encode(i, tile_pixels)
        elif jpeg_tiles:
            data, compression = jpeg_bytes(tile_pixels, comment=jpeg_tiles if isinstance(jpeg_tiles, bytes) else None), 1
        else:
            data, compression = tile_pixels.tobytes(), 0
        dims = [("X", i * tile, tile, tile), ("Y", 0, tile, tile), ("C", 0, 1, 1), ("M", i, 1, 1)]
        entry = dv_entry(0, position, compression, dims)
        xml = (f"<METADATA><Tags><AcquisitionTime>{planted['date']}</AcquisitionTime>"
               f"<StageXPosition>+000000038581.6160</StageXPosition><StageYPosition>+12.5</StageYPosition>"
               f"</Tags><DataSchema/><AttachmentSchema/></METADATA>").encode() if subblock_xml else b""
        fixed = struct.pack("<iiq", len(xml), 0, len(data)) + entry
        block = segment(b"ZISRAWSUBBLOCK", fixed.ljust(256, b"\0") + xml + data)
        blocks.append(block)
        entries.append(entry)
        position += len(block)
    extra_attachments, attachments = list(attachments or ()), []
    if thumbnail:
        attachments.append((b"JPG", b"Thumbnail", jpeg_bytes(text_image(planted["label"], 128, 64))))
    if timestamps:
        attachments.append((b"CZTIMS", b"TimeStamps", timestamps if isinstance(timestamps, bytes)
                            else struct.pack("<iid", 16, 1, 0.544)))
    if eventlist:
        text = planted["event"].encode() + b"\0"
        attachments.append((b"CZEVL", b"EventList", struct.pack("<ii", 8 + 20 + len(text), 1)
                            + struct.pack("<idii", 20 + len(text), 1.5, 0, len(text)) + text))
    for wanted, name, text in ((label, b"Label", planted["label"]), (preview, b"SlidePreview", planted["preview"])):
        if wanted:
            image = text_image(text)
            if nested:
                attachments.append((b"CZI", name, _nested(image, {"user": text, "name": text})))
            else:
                attachments.append((b"JPG", name, jpeg_bytes(image)))
    attachments += extra_attachments
    att_segments, att_entries = [], []
    for kind, name, payload in attachments:
        entry = struct.pack("<2s10sqi16s8s80s", b"A1", bytes(10), position, 0, uuid.uuid4().bytes_le,
                            kind, name)
        seg = segment(b"ZISRAWATTACH", (struct.pack("<q8s", len(payload), bytes(8)) + entry).ljust(256, b"\0")
                      + payload)
        att_segments.append(seg)
        att_entries.append(entry)
        position += len(seg)
    attdir_at = position
    attdir = segment(b"ZISRAWATTDIR", struct.pack("<i", len(att_entries)).ljust(256, b"\0") + b"".join(att_entries))
    position += len(attdir)
    guid = uuid.uuid4().bytes_le
    header = struct.pack("<iiii16s16siqqiq", 1, 0, 0, 0, guid, guid, 0, 544, metadata_at, 0,
                         attdir_at if attachments else 0)
    file_segment = segment(b"ZISRAWFILE", header.ljust(512, b"\0"))
    directory = segment(b"ZISRAWDIRECTORY", struct.pack("<i", tiles).ljust(128, b"\0") + b"".join(entries),
                        allocated=directory_size)
    parts = [file_segment, directory, metadata_segment, *blocks, *att_segments]
    if attachments:
        parts.append(attdir)
    if deleted_payload:
        parts.append(segment(b"DELETED", deleted_payload, used=0))
    parts.extend(extra_segments)
    return b"".join(parts)


def _nested(image, planted):
    """A one-subblock CZI holding `image` (Gray8): what Label and SlidePreview attachments are."""
    height, width = image.shape
    metadata = metadata_xml(dict(PLANTED, **planted), width, height).encode("utf-8")
    metadata_segment = segment(b"ZISRAWMETADATA", struct.pack("<ii", len(metadata), 0).ljust(256, b"\0") + metadata)
    directory_size = -(-(128 + 32 + 20 * 3) // 32) * 32
    metadata_at = 544 + 32 + directory_size
    block_at = metadata_at + len(metadata_segment)
    entry = dv_entry(0, block_at, 0, [("X", 0, width, width), ("Y", 0, height, height), ("C", 0, 1, 1)])
    block = segment(b"ZISRAWSUBBLOCK", (struct.pack("<iiq", 0, 0, image.size) + entry).ljust(256, b"\0")
                    + image.tobytes())
    guid = uuid.uuid4().bytes_le
    header = struct.pack("<iiii16s16siqqiq", 1, 0, 0, 0, guid, guid, 0, 544, metadata_at, 0, 0)
    return b"".join([segment(b"ZISRAWFILE", header.ljust(512, b"\0")),
                     segment(b"ZISRAWDIRECTORY", struct.pack("<i", 1).ljust(128, b"\0") + entry,
                             allocated=directory_size),
                     metadata_segment, block])


def write(path, **options):
    planted = dict(PLANTED, **options.get("planted", {}) or {})
    with open(path, "wb") as fh:
        fh.write(build(**options))
    return planted


def write_sparse(path, tiles, tile=1024):
    """A large CZI for benchmarks: `tiles` Gray8 subblocks of tile×tile whose pixel data are
    holes (no disk cost), with the metadata, subblock XML and attachments of `build`."""
    planted = dict(PLANTED)
    metadata = metadata_xml(planted, tile * tiles, tile).encode("utf-8")
    metadata_segment = segment(b"ZISRAWMETADATA", struct.pack("<ii", len(metadata), 0).ljust(256, b"\0") + metadata)
    entry_size = 32 + 20 * 4
    directory_size = -(-(128 + tiles * entry_size) // 32) * 32
    position = 32 + 512 + 32 + directory_size + len(metadata_segment)
    xml = (f"<METADATA><Tags><AcquisitionTime>{planted['date']}</AcquisitionTime>"
           f"<StageXPosition>+1.5</StageXPosition></Tags></METADATA>").encode()
    data_size = tile * tile
    allocated = -(-(256 + len(xml) + data_size) // 32) * 32
    entries, heads = [], []
    for i in range(tiles):
        entry = dv_entry(0, position, 0, [("X", i * tile, tile, tile), ("Y", 0, tile, tile),
                                          ("C", 0, 1, 1), ("M", i, 1, 1)])
        entries.append(entry)
        heads.append((position, b"ZISRAWSUBBLOCK".ljust(16, b"\0") + struct.pack("<qq", allocated, allocated)
                      + (struct.pack("<iiq", len(xml), 0, data_size) + entry).ljust(256, b"\0") + xml))
        position += 32 + allocated
    payload = jpeg_bytes(text_image(planted["label"], 128, 64))
    entry = struct.pack("<2s10sqi16s8s80s", b"A1", bytes(10), position, 0, bytes(16), b"JPG", b"Label")
    attachment = segment(b"ZISRAWATTACH", (struct.pack("<q8s", len(payload), bytes(8)) + entry).ljust(256, b"\0") + payload)
    attdir_at = position + len(attachment)
    attdir = segment(b"ZISRAWATTDIR", struct.pack("<i", 1).ljust(256, b"\0") + entry)
    guid = uuid.uuid4().bytes_le
    header = struct.pack("<iiii16s16siqqiq", 1, 0, 0, 0, guid, guid, 0, 544, 544 + 32 + directory_size, 0, attdir_at)
    with open(path, "wb") as fh:
        fh.write(segment(b"ZISRAWFILE", header.ljust(512, b"\0")))
        fh.write(segment(b"ZISRAWDIRECTORY", struct.pack("<i", tiles).ljust(128, b"\0") + b"".join(entries),
                         allocated=directory_size))
        fh.write(metadata_segment)
        for at, head in heads:
            fh.seek(at)
            fh.write(head)
        fh.seek(position)
        fh.write(attachment + attdir)
    return planted
