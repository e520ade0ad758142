"""Plausibility checks on input images, run before any compute (numpy only; no SimpleITK, no torch).

Two kinds of result: a refusal (:class:`~voxmmsd.errors.InputError` naming the file and the fix)
where a segmentation would be confidently wrong, and a warning (a string) where the result still
means something but deserves a second look.

* :func:`check_file_complete` -- the bytes on disk: a complete gzip stream, a data block as long
  as the header says (NIfTI, NRRD, MetaImage), and NaN/inf in a NIfTI's *raw* float data (ITK's
  NIfTI reader turns them into zeros before anyone can see them).
* :func:`check_mri` -- one MRI volume: constant or near-constant, spacing and size outside what a
  brain MRI can have, the brain (non-background) volume in mL, a background that is not 0.
* :func:`check_distinct` -- the same file or the same voxels given for two different sequences.
* :func:`looks_skull_stripped` -- is this volume a skull-stripped brain (the models' input)?
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from voxmmsd.errors import InputError
from voxmmsd.io.digest import sha256_file

#: voxel spacing (mm) a brain MRI can have; outside: refused (a wrong header, or not an MRI of a head)
SPACING_RANGE_MM: Tuple[float, float] = (0.1, 8.0)
#: fewest voxels along an axis of a 3-D brain MRI
MIN_AXIS_VOXELS = 10
#: non-background (brain or head) volume, mL: outside REFUSE -> refused, outside WARN -> warning
BRAIN_ML_REFUSE: Tuple[float, float] = (10.0, 12000.0)
BRAIN_ML_WARN: Tuple[float, float] = (250.0, 2500.0)
#: a field of view (of an image without a clean background) larger than this cannot be a head scan
MAX_FIELD_OF_VIEW_ML = 60000.0
#: a skull-stripped brain (with its CSF) is at most this large; a head with skull and scalp is larger
MAX_STRIPPED_ML = 2600.0
#: a skull-stripped volume has at least this fraction of voxels at exactly the background value (a tight
#: crop around a brain still has about half; noisy scanner air has well under 1 %)
MIN_BACKGROUND_FRACTION = 0.05
#: a background covering this fraction of the volume at a value other than 0 is refused
NONZERO_BACKGROUND_FRACTION = 0.15
#: relative spread (p99 - p1) / max(|p99|, |p1|) of the foreground below which an image is near-constant
NEAR_CONSTANT_SPREAD = 1e-3

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


# -- one MRI volume ------------------------------------------------------------------------

def _sample(array: np.ndarray, limit: int = 2_000_000) -> np.ndarray:
    flat = array.reshape(-1)
    step = max(1, flat.size // limit)
    return flat[::step]


def background_value(array: np.ndarray) -> Tuple[float, float]:
    """(value, fraction of voxels) of the background: 0 if that is frequent, else the minimum."""
    n = array.size
    zero = float(np.count_nonzero(array == 0)) / n
    lo = float(array.min())
    at_min = float(np.count_nonzero(array <= lo)) / n if lo != 0 else zero
    if zero >= MIN_BACKGROUND_FRACTION or zero >= at_min:
        return 0.0, zero
    return lo, at_min


@dataclass(frozen=True)
class SkullStripCheck:
    """The outcome of :func:`looks_skull_stripped` (``stripped`` and the measures it was decided on)."""

    stripped: bool
    background_fraction: float  # fraction of voxels at the background value
    foreground_ml: float  # volume of the non-background voxels
    shell_ratio: float  # mean intensity 4-10 mm inside the surface / min(outer 3 mm, deeper than 12 mm); nan if unknown
    reason: str  # why it does not look skull-stripped ("" if it does)


#: a layer 4-10 mm under the surface darker than this fraction of both the surface and the interior is a skull
MAX_SKULL_SHELL_RATIO = 0.5


def shell_ratio(foreground: np.ndarray, array: np.ndarray, spacing_xyz: Sequence[float]) -> float:
    """Mean intensity 4-10 mm beneath the foreground's surface over the smaller of the mean of the outer
    3 mm and of the part deeper than 12 mm (on a grid of about 2 mm); nan when a layer is empty.

    In a head the 4-10 mm layer is skull (no MRI signal) between scalp and brain: a ratio well below 1.
    In a skull-stripped brain that layer is cortex and white matter: about 1 or more.
    """
    from scipy import ndimage

    spacing_zyx = [float(s) for s in spacing_xyz][::-1]
    step = [max(1, int(round(2.0 / s))) for s in spacing_zyx]
    sl = tuple(slice(None, None, k) for k in step)
    mask = foreground[sl]
    values = array[sl]
    depth = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=[s * k for s, k in zip(spacing_zyx, step)])
    depth = depth[1:-1, 1:-1, 1:-1]
    outer = values[mask & (depth <= 3.0)]
    shell = values[(depth > 4.0) & (depth <= 10.0)]
    inner = values[depth > 12.0]
    if not (outer.size and shell.size and inner.size):
        return float("nan")
    ref = min(float(outer.mean()), float(inner.mean()))
    return float(shell.mean()) / ref if ref > 0 else float("nan")


def looks_skull_stripped(array: np.ndarray, spacing_xyz: Sequence[float]) -> SkullStripCheck:
    """Does ``array`` (z, y, x) with voxel spacing ``spacing_xyz`` (mm, x y z) look like a skull-stripped brain?

    Three tests, each a sign of skull and scalp still there:

    1. background: a skull-stripped MRI has a wide background at exactly one value (0, or the
       minimum): at least :data:`MIN_BACKGROUND_FRACTION` of the voxels. Scanner images have noisy air.
    2. size: the non-background part is no larger than a brain (:data:`MAX_STRIPPED_ML`).
    3. skull shell: the layer 4-10 mm under the surface is not a dark shell (skull bone gives no
       MRI signal) between a brighter surface (scalp) and a brighter interior (brain):
       :func:`shell_ratio` >= :data:`MAX_SKULL_SHELL_RATIO`.

    Pure; about 0.3 s for a 240 x 240 x 155 volume.
    """
    arr = np.asarray(array)
    value, frac = background_value(arr)
    voxel_ml = float(np.prod([float(s) for s in spacing_xyz])) / 1000.0
    fg_ml = float(arr.size - round(frac * arr.size)) * voxel_ml
    if frac < MIN_BACKGROUND_FRACTION:
        return SkullStripCheck(False, frac, fg_ml, float("nan"),
                               f"only {frac:.0%} of the voxels are background (a skull-stripped image has a wide "
                               f"background of zeros)")
    if fg_ml > MAX_STRIPPED_ML:
        return SkullStripCheck(False, frac, fg_ml, float("nan"),
                               f"the non-background part is {fg_ml:.0f} mL, larger than a brain (at most "
                               f"{MAX_STRIPPED_ML:.0f} mL): skull and scalp are still there")
    ratio = shell_ratio(arr != value, arr, spacing_xyz)
    if ratio < MAX_SKULL_SHELL_RATIO:
        return SkullStripCheck(False, frac, fg_ml, ratio,
                               f"a dark shell 4-10 mm under the surface (intensity {ratio:.2f} x the surface's and "
                               f"the interior's) looks like the skull between scalp and brain")
    return SkullStripCheck(True, frac, fg_ml, ratio, "")


def check_mri(array: np.ndarray, spacing_xyz: Sequence[float], path: Path, what: str = "image") -> List[str]:
    """Refuse an MRI volume no segmentation can be trusted on; return warnings for doubtful ones.

    Refused: constant or near-constant; spacing outside :data:`SPACING_RANGE_MM`; fewer than
    :data:`MIN_AXIS_VOXELS` along an axis; a non-background volume outside :data:`BRAIN_ML_REFUSE`;
    a wide background at a value other than 0. Warned: a brain volume outside :data:`BRAIN_ML_WARN`.
    """
    arr = np.asarray(array)
    spacing = [float(s) for s in spacing_xyz]
    size_xyz = tuple(int(v) for v in arr.shape[::-1])
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise InputError(f"{what} {path} is constant (every voxel is {lo:g}): it holds no image. Check that the right "
                         f"file was given and that it was exported correctly.")
    bad = [s for s in spacing if not SPACING_RANGE_MM[0] <= s <= SPACING_RANGE_MM[1]]
    if bad:
        raise InputError(f"{what} {path} has voxel spacing {tuple(round(s, 4) for s in spacing)} mm, outside what a "
                         f"brain MRI can have ({SPACING_RANGE_MM[0]}-{SPACING_RANGE_MM[1]} mm): the header is wrong or "
                         f"this is not a brain MRI. Fix the spacing in the header (e.g. re-export from DICOM).")
    if min(size_xyz) < MIN_AXIS_VOXELS:
        raise InputError(f"{what} {path} has only {size_xyz} voxels (x, y, z): too small to hold a brain MRI "
                         f"(at least {MIN_AXIS_VOXELS} along each axis). Give the full 3-D volume.")
    value, frac = background_value(arr)
    if value != 0 and frac >= NONZERO_BACKGROUND_FRACTION:
        raise InputError(f"{what} {path}: its background ({frac:.0%} of the voxels) is {value:g}, not 0; the models "
                         f"take every non-zero voxel for brain. Shift the image so that the background is 0 "
                         f"(subtract {value:g}), or give the original image.")
    fg = _sample(arr)
    fg = fg[fg != value]
    if fg.size:
        p1, p99 = (float(v) for v in np.percentile(fg, [1, 99]))
        if p99 - p1 <= NEAR_CONSTANT_SPREAD * max(abs(p99), abs(p1), 1e-12):
            raise InputError(f"{what} {path} is nearly constant (98% of its non-background voxels lie within "
                             f"{p1:g}..{p99:g}): it looks like a mask, not an MRI. Give the MRI image itself.")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    fg_ml = float(arr.size - round(frac * arr.size)) * voxel_ml
    has_background = frac >= MIN_BACKGROUND_FRACTION  # else (noisy air) the foreground is the whole field of view
    if has_background and not BRAIN_ML_REFUSE[0] <= fg_ml <= BRAIN_ML_REFUSE[1] or \
            not has_background and arr.size * voxel_ml > MAX_FIELD_OF_VIEW_ML:
        shown = fg_ml if has_background else arr.size * voxel_ml
        raise InputError(f"{what} {path}: the imaged {'brain/head' if has_background else 'field of view'} is "
                         f"{shown:.1f} mL (voxel spacing {tuple(round(s, 3) for s in spacing)} mm), impossible for "
                         f"a head ({BRAIN_ML_REFUSE[0]:.0f}-{BRAIN_ML_REFUSE[1]:.0f} mL). The spacing in the header "
                         f"is probably wrong; fix it (e.g. re-export from DICOM).")
    warnings: List[str] = []
    brain_like = has_background and fg_ml <= MAX_STRIPPED_ML  # (a head is checked elsewhere)
    if brain_like and not BRAIN_ML_WARN[0] <= fg_ml <= BRAIN_ML_WARN[1]:
        warnings.append(f"{what}: the brain is {fg_ml:.0f} mL, outside the usual {BRAIN_ML_WARN[0]:.0f}-"
                        f"{BRAIN_ML_WARN[1]:.0f} mL; check the voxel spacing in the header of {path} "
                        f"(tumour volumes scale with it).")
    return warnings


# -- several sequences ----------------------------------------------------------------------

def check_distinct(paths: Mapping[str, Path], names: Mapping[str, str]) -> None:
    """Refuse one file given for two sequences (the same path, or files with identical bytes)."""
    resolved: Dict[str, str] = {}
    by_size: Dict[int, List[str]] = {}
    for key, p in paths.items():
        path = Path(p)
        real = str(path.resolve()) if path.exists() else str(path)
        for other, r in resolved.items():
            if r == real:
                raise InputError(f"The same file {path} is given for {names[other]} and {names[key]}. Give each "
                                 f"sequence its own image.")
        resolved[key] = real
        if path.is_file():
            by_size.setdefault(path.stat().st_size, []).append(key)
    for keys in by_size.values():
        if len(keys) < 2:
            continue
        digests: Dict[str, str] = {}
        for key in keys:
            h = sha256_file(Path(paths[key]))
            for other, d in digests.items():
                if d == h:
                    raise InputError(f"{names[other]} ({paths[other]}) and {names[key]} ({paths[key]}) are the same "
                                     f"file (identical bytes). Give each sequence its own image.")
            digests[key] = h


def check_distinct_arrays(arrays: Mapping[str, np.ndarray], paths: Mapping[str, Path],
                          names: Mapping[str, str]) -> None:
    """Refuse two sequences holding identical voxels (the same image exported twice under two names)."""
    keys = list(arrays)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            x, y = arrays[a], arrays[b]
            if x.shape == y.shape and np.array_equal(x, y):
                raise InputError(f"{names[a]} ({paths[a]}) and {names[b]} ({paths[b]}) hold identical voxels: the "
                                 f"same image was given for two sequences. Give each sequence its own image.")
