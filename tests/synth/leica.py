"""Synthetic Leica SCN (SCN400, Versa): BigTIFF whose directory 0 holds the collection XML.

As in OpenSlide's Leica samples, directory 0 is the macro image (a tiled photo of the whole
slide, label included; its view is the collection's full size at 0,0), followed by the main
image's levels. Identifiers: collection name and uuid, base64 barcode, image names and uuids,
creation dates.
"""

import base64

from paw.formats.tifftags import Tag, Type

from . import ACCESSION, BARCODE, PATIENT, tiled
from .tiffwriter import write_tiff
NS = "http://www.leica-microsystems.com/scn/2010/10/01"
CREATED = "2026-11-20T14:32:07.00Z"
UUID = "7c4e1b52-3f1d-4c7e-9d2a-paw0000000001"


def description(width, height):
    macro_w, macro_h = 512, 256
    return (f'<?xml version="1.0"?>\r\n<scn xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{NS} {NS}/scn.xsd" xmlns="{NS}">'
            f'<collection name="{ACCESSION} {PATIENT}" uuid="{UUID}" sizeX="76000000" sizeY="25000000">'
            f"<barcode>{base64.b64encode(BARCODE.encode()).decode()}</barcode>"
            f'<image name="{ACCESSION} macro" uuid="{UUID}-m"><creationDate>{CREATED}</creationDate>'
            '<device model="Leica SCN400;Leica SCN" version="1.5.1.10804 2012/05/10 13:29:07;1.5.1.10864"/>'
            f'<pixels sizeX="{macro_w}" sizeY="{macro_h}"><dimension sizeX="{macro_w}" sizeY="{macro_h}" r="0" ifd="0"/></pixels>'
            '<view sizeX="76000000" sizeY="25000000" offsetX="0" offsetY="0" spacingZ="0"/>'
            "<scanSettings><illuminationSettings><illuminationSource>brightfield</illuminationSource>"
            "</illuminationSettings></scanSettings></image>"
            f'<image name="{PATIENT} main" uuid="{UUID}-i"><creationDate>{CREATED}</creationDate>'
            '<device model="Leica SCN400;Leica SCN" version="1.5.1.10804 2012/05/10 13:29:07;1.5.1.10864"/>'
            f'<pixels sizeX="{width}" sizeY="{height}">'
            f'<dimension sizeX="{width}" sizeY="{height}" r="0" ifd="1"/>'
            f'<dimension sizeX="{width // 4}" sizeY="{height // 4}" r="1" ifd="2"/></pixels>'
            f'<view sizeX="{width * 500}" sizeY="{height * 500}" offsetX="10000000" offsetY="5000000" spacingZ="0"/>'
            "<scanSettings><objectiveSettings><objective>20</objective></objectiveSettings>"
            "<illuminationSettings><numericalAperture>0.4</numericalAperture>"
            "<illuminationSource>brightfield</illuminationSource></illuminationSettings></scanSettings>"
            "</image></collection></scn>")


def planted():
    return [PATIENT, ACCESSION, BARCODE, UUID, CREATED, base64.b64encode(BARCODE.encode()).decode()]


def write(path, width=1024, height=768, sparse=False, extra_images=()):
    """Write a synthetic SCN and return the identifiers planted in it; `extra_images` are
    appended (no kept image refers to them)."""
    date = {Tag.DATE_TIME: (Type.ASCII, "2026:11:20 14:32:07")}
    images = [tiled({**date, Tag.IMAGE_DESCRIPTION: (Type.ASCII, description(width, height))},
                    512, 256, 7),
              tiled(date, width, height, 0, sparse), tiled(date, width // 4, height // 4, 1, sparse)]
    write_tiff(path, images + list(extra_images), bigtiff=True)
    return planted()
