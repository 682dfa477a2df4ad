"""Synthetic DICOM WSI slide: a folder of VOLUME, LABEL and OVERVIEW instances (needs pydicom).

One series, uncompressed RGB (explicit VR little endian), TILED_FULL, as libdicom (OpenSlide)
reads it. Identifiers are planted where the Basic Application Level Confidentiality Profile
says they live: patient, study/accession, dates and times, operator, institution, device
serial, container and specimen identifiers, label text and barcode, a private tag.
"""

import os

from . import ACCESSION, BARCODE, OPERATOR, PATIENT, SERIAL

WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"
TILE = 16


def planted():
    return [PATIENT, ACCESSION, BARCODE, OPERATOR, SERIAL, "19610402", "20261120", "Saint Paw Hospital"]


def _instance(role, study, series, frame_of_reference, width, height):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = WSI
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = WSI, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
    ds.ImageType = ["ORIGINAL", "PRIMARY", role, "NONE"]
    ds.Modality, ds.Manufacturer = "SM", "paw synthetic scanner"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT, ACCESSION, "19610402"
    ds.AccessionNumber, ds.StudyID = ACCESSION, ACCESSION
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20261120"
    ds.StudyTime = ds.ContentTime = "143207"
    ds.AcquisitionDateTime = "20261120143207"
    ds.OperatorsName, ds.DeviceSerialNumber = OPERATOR, SERIAL
    ds.InstitutionName = "Saint Paw Hospital"
    ds.ContainerIdentifier, ds.LabelText, ds.BarcodeValue = BARCODE, PATIENT, BARCODE
    specimen = Dataset()
    specimen.SpecimenIdentifier, specimen.SpecimenUID = ACCESSION, generate_uid()
    ds.SpecimenDescriptionSequence = Sequence([specimen])
    ds.add_new(0x00091010, "LO", f"private {PATIENT}")
    ds.add_new(0x00090010, "LO", "PAW PRIVATE")
    ds.InstanceNumber, ds.SeriesNumber = 1, 1
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = width, height
    ds.Rows = ds.Columns = TILE
    frames = -(-width // TILE) * -(-height // TILE)
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.ImagedVolumeWidth, ds.ImagedVolumeHeight, ds.ImagedVolumeDepth = width / 1000, height / 1000, 0.001
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = origin.YOffsetInSlideCoordinateSystem = 0
    ds.TotalPixelMatrixOriginSequence = Sequence([origin])
    measures = Dataset()
    measures.PixelSpacing, measures.SliceThickness = [0.001, 0.001], 0.001
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    path = Dataset()
    path.OpticalPathIdentifier = "1"
    ds.OpticalPathSequence = Sequence([path])
    ds.NumberOfOpticalPaths = 1
    ds.VolumetricProperties, ds.SpecimenLabelInImage = "VOLUME", "YES" if role != "VOLUME" else "NO"
    ds.FocusMethod, ds.ExtendedDepthOfField, ds.BurnedInAnnotation = "AUTO", "NO", "NO"
    pixels = bytearray()
    for frame in range(frames):
        pixels += bytes(((frame * 40 + i) % 256 for i in range(TILE * TILE * 3)))
    ds.PixelData = bytes(pixels)
    return ds


def write(folder):
    """A slide folder with VOLUME, LABEL and OVERVIEW instances; returns the planted values."""
    from pydicom.uid import generate_uid
    os.makedirs(folder, exist_ok=True)
    study, series, frame_of_reference = generate_uid(), generate_uid(), generate_uid()
    for name, role, size in (("volume.dcm", "VOLUME", (64, 48)), ("label.dcm", "LABEL", (32, 32)),
                             ("overview.dcm", "OVERVIEW", (48, 32))):
        ds = _instance(role, study, series, frame_of_reference, *size)
        ds.save_as(os.path.join(folder, name), enforce_file_format=True)
    return planted()
