"""Are the bytes on disk complete? Checked before an image is read (numpy only; no SimpleITK, no torch).

:func:`check_file_complete` refuses (:class:`~voxmmsd.errors.InputError` naming the file and the fix) a
compressed stream that is cut or damaged, a data block shorter than its header says (NIfTI, NRRD, MetaImage),
and NaN/inf in a NIfTI's *raw* float data (ITK's NIfTI reader turns them into zeros before anyone can see
them); :func:`nifti_version` tells NIfTI-1 from NIfTI-2. The checks of what an image holds are
:mod:`voxmmsd.io.checks`'.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from voxmmsd.errors import InputError

_CHUNK = 4 << 20

# NIfTI datatype code -> numpy dtype (only the ones whose size and NaN we check)
_NIFTI_DTYPES: Dict[int, str] = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2",
                                 768: "u4", 1024: "i8", 1280: "u8", 32: "c8", 1792: "c16", 128: "u1",
                                 2304: "u1"}
_NIFTI_ITEMS = {128: 3, 2304: 4}  # RGB24, RGBA32: bytes per voxel


def _fix(path: Path) -> str:
    return (f"The file {path} looks incomplete or damaged (an interrupted copy or download?). "
            f"Copy or export it again.")


# -- the bytes on disk ---------------------------------------------------------------------

class _Stream:
    """Read a file (gzip-decompressed if it is gzip) in chunks, checking the gzip stream is complete
    (end marker, CRC and length, every member). zlib directly: about 3x faster than ``gzip.GzipFile``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open(path, "rb")
        self.gz = self.f.read(2) == b"\x1f\x8b"
        self.f.seek(0)
        self.d = zlib.decompressobj(31)
        self.in_member = self.gz  # inside a gzip member whose end marker has not been seen yet
        self.buf = b""
        self.done = False

    def _damaged(self, why: str) -> InputError:
        return InputError(f"{self.path}: the compressed (gzip) data {why}. {_fix(self.path)}")

    def _fill(self, n: int) -> None:
        while len(self.buf) < n and not self.done:
            raw = self.f.read(_CHUNK)
            if not raw:
                if self.in_member:
                    raise self._damaged("ends before its end marker: the file is truncated")
                self.done = True
                continue
            if not self.gz:
                self.buf += raw
                continue
            while raw:
                if not self.in_member:  # after a member: another member, or padding
                    if not raw.strip(b"\x00"):
                        break
                    self.d = zlib.decompressobj(31)
                    self.in_member = True
                try:
                    self.buf += self.d.decompress(raw)
                except zlib.error as exc:  # also a wrong CRC or length at the end of a member
                    raise self._damaged(f"is damaged ({exc})") from None
                if self.d.eof:
                    raw, self.in_member = self.d.unused_data, False
                else:
                    raw = b""

    def read(self, n: int) -> bytes:
        self._fill(n)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def drain(self) -> int:
        total = 0
        while True:
            block = self.read(_CHUNK)
            if not block:
                return total
            total += len(block)

    def close(self) -> None:
        self.f.close()


def _nifti_header(head: bytes) -> Optional[Tuple[str, int, int, Optional[str], int]]:
    """(endian, vox_offset, n_voxels, dtype or None, bytes per voxel) of a single-file NIfTI, or None."""
    if len(head) < 348:
        return None
    for endian in ("<", ">"):
        size = struct.unpack(endian + "i", head[:4])[0]
        if size == 348 and head[344:347] == b"n+1":
            dims = struct.unpack(endian + "8h", head[40:56])
            code, bitpix = struct.unpack(endian + "2h", head[70:74])
            offset = int(struct.unpack(endian + "f", head[108:112])[0])
            break
        if size == 540 and len(head) >= 540 and head[4:7] == b"n+2":
            code, bitpix = struct.unpack(endian + "2h", head[12:16])
            dims = struct.unpack(endian + "8q", head[16:80])
            offset = int(struct.unpack(endian + "q", head[168:176])[0])
            break
    else:
        return None
    ndim = int(dims[0])
    if not 1 <= ndim <= 7:
        return None
    n = 1
    for d in dims[1:ndim + 1]:
        n *= max(int(d), 1)
    dtype = _NIFTI_DTYPES.get(int(code))
    item = _NIFTI_ITEMS.get(int(code), int(bitpix) // 8 if bitpix > 0 else 0)
    return endian, max(offset, 348 if size == 348 else 540), n, dtype, item


def nifti_version(path: Path) -> Optional[int]:
    """1 or 2 for a single-file NIfTI (gzip or not) by its header size and magic, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head == b"\x1f\x8b":
                head = zlib.decompressobj(31).decompress(f.read(4096), 540)
            else:
                head = f.read(540)
    except (OSError, zlib.error):
        return None
    for endian in ("<", ">"):
        if len(head) >= 348 and struct.unpack(endian + "i", head[:4])[0] == 348 and head[344:347] == b"n+1":
            return 1
        if len(head) >= 540 and struct.unpack(endian + "i", head[:4])[0] == 540 and head[4:7] == b"n+2":
            return 2
    return None


def _check_nifti(path: Path, what: str) -> None:
    s = _Stream(path)
    try:
        head = s.read(540)
        info = _nifti_header(head)
        if info is None:
            s.drain()
            return
        endian, offset, n, dtype, item = info
        expected = n * item
        skip = offset - len(head)
        if skip > 0:
            head = head + s.read(skip)
        data = head[offset:]
        got = len(data)
        nonfinite = 0
        float_check = dtype in ("f4", "f8")
        carry = b""
        size = np.dtype(dtype).itemsize if float_check else 1  # type: ignore[arg-type]
        while True:
            if float_check and data:
                buf = carry + data
                usable = (len(buf) // size) * size
                arr = np.frombuffer(buf[:usable], dtype=endian + dtype)  # type: ignore[operator]
                nonfinite += int(arr.size - np.count_nonzero(np.isfinite(arr)))
                carry = buf[usable:]
            data = s.read(_CHUNK)
            if not data:
                break
            got += len(data)
    finally:
        s.close()
    if got < expected:
        raise InputError(f"{what} {path} is truncated: its header describes {expected} bytes of voxel data but the "
                         f"file holds {got} ({got / max(expected, 1):.0%}). {_fix(path)}")
    if nonfinite:
        raise InputError(f"{what} {path} holds {nonfinite} NaN or infinite voxel(s) in its raw data. Fix or "
                         f"re-export the image (replace NaN/inf by 0 in the background only if that is what "
                         f"they mean).")


_NRRD_TYPES = {"char": 1, "signed char": 1, "int8": 1, "int8_t": 1, "uchar": 1, "unsigned char": 1, "uint8": 1,
               "uint8_t": 1, "short": 2, "short int": 2, "signed short": 2, "signed short int": 2, "int16": 2,
               "int16_t": 2, "ushort": 2, "unsigned short": 2, "unsigned short int": 2, "uint16": 2,
               "uint16_t": 2, "int": 4, "signed int": 4, "int32": 4, "int32_t": 4, "uint": 4, "unsigned int": 4,
               "uint32": 4, "uint32_t": 4, "longlong": 8, "long long": 8, "int64": 8, "int64_t": 8,
               "ulonglong": 8, "unsigned long long": 8, "uint64": 8, "uint64_t": 8, "float": 4, "double": 8}
_META_TYPES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
               "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
               "MET_DOUBLE": 8}


def _text_header(path: Path, nrrd: bool) -> Tuple[Dict[str, str], int]:
    """Fields of an NRRD / MetaImage text header and the byte offset where the data starts."""
    with open(path, "rb") as f:
        raw = f.read(65536)
    fields: Dict[str, str] = {}
    pos = 0
    for line in raw.split(b"\n"):
        pos += len(line) + 1
        text = line.decode("latin-1").strip()
        if nrrd:
            if not text:
                return fields, pos
            if text.startswith("#") or text.startswith("NRRD"):
                continue
            key, sep, value = text.partition(":")
            if sep:
                fields[key.strip().lower()] = value.lstrip("=").strip()
        else:
            key, sep, value = text.partition("=")
            if sep:
                fields[key.strip().lower()] = value.strip()
                if key.strip().lower() == "elementdatafile":
                    return fields, pos
    return fields, -1


def _check_embedded(path: Path, what: str, offset: int, expected: int, compression: str) -> None:
    got = 0
    with open(path, "rb") as f:
        f.seek(offset)
        if compression == "none":
            f.seek(0, 2)
            got = f.tell() - offset
        else:
            d = zlib.decompressobj(31 if compression == "gzip" else 15)
            while not d.eof:
                block = f.read(_CHUNK)
                if not block:
                    break
                try:
                    got += len(d.decompress(block))
                except zlib.error as exc:
                    raise InputError(f"{what} {path}: the compressed data is damaged ({exc}). {_fix(path)}") from None
            if not d.eof:
                raise InputError(f"{what} {path}: the compressed data ends before its end marker: the file is "
                                 f"truncated. {_fix(path)}")
    if got < expected:
        raise InputError(f"{what} {path} is truncated: its header describes {expected} bytes of voxel data but the "
                         f"file holds {got} ({got / max(expected, 1):.0%}). {_fix(path)}")


def _check_nrrd(path: Path, what: str) -> None:
    fields, offset = _text_header(path, nrrd=True)
    if offset < 0 or "data file" in fields or "datafile" in fields or "line skip" in fields or "byte skip" in fields:
        return  # detached data or skips: leave it to the reader
    item = _NRRD_TYPES.get(fields.get("type", "").lower())
    try:
        sizes = [int(v) for v in fields.get("sizes", "").split()]
    except ValueError:
        return
    encoding = fields.get("encoding", "raw").lower()
    if item is None or not sizes or encoding not in ("raw", "gzip", "gz"):
        return
    _check_embedded(path, what, offset, int(np.prod(sizes)) * item, "none" if encoding == "raw" else "gzip")


def _check_meta(path: Path, what: str) -> None:
    fields, offset = _text_header(path, nrrd=False)
    if offset < 0 or fields.get("elementdatafile", "").upper() != "LOCAL":
        return
    item = _META_TYPES.get(fields.get("elementtype", "").upper())
    try:
        dims = [int(v) for v in fields.get("dimsize", "").split()]
        channels = int(fields.get("elementnumberofchannels", "1"))
    except ValueError:
        return
    if item is None or not dims:
        return
    compressed = fields.get("compresseddata", "false").lower() == "true"
    _check_embedded(path, what, offset, int(np.prod(dims)) * item * channels, "zlib" if compressed else "none")


def check_file_complete(path: Path, what: str = "image") -> None:
    """Refuse a file whose data is shorter than its header says or whose compressed stream is cut or damaged;
    refuse NaN/inf in a NIfTI's raw float data (ITK's NIfTI reader would silently turn them into 0).

    A folder (DICOM series) and formats without a checkable header pass unchecked.
    """
    path = Path(path)
    if not path.is_file():
        return
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        _check_nifti(path, what)
    elif name.endswith(".nrrd"):
        _check_nrrd(path, what)
    elif name.endswith(".mha"):
        _check_meta(path, what)
    elif name.endswith(".gz"):
        s = _Stream(path)
        try:
            s.drain()
        finally:
            s.close()
