"""A hand-made brain for the plausibility tests: white and grey matter with seeded gyri, two lateral
ventricles, a tumour (oedema, enhancing rim, necrotic core) in one hemisphere, and the four
sequences with their usual contrasts. 2 mm voxels, about 1 L of brain: every check has what it needs,
and a case takes milliseconds.

Contrasts (relative to white matter): T1n / T1c CSF dark, grey matter darker than white; T1c the
enhancing rim bright; T2w CSF bright, oedema bright; FLAIR CSF dark, oedema bright.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

BACKGROUND, WM, GM, CSF, SNFH, NETC, ET = range(7)
LABEL_OF = np.array([0, 0, 0, 0, 2, 1, 3], np.uint8)
CONTRAST = {
    "t1n": (0.0, 0.80, 0.60, 0.20, 0.55, 0.35, 0.60),
    "t1c": (0.0, 0.80, 0.60, 0.20, 0.55, 0.35, 1.40),
    "t2w": (0.0, 0.40, 0.60, 1.50, 1.00, 1.20, 0.90),
    "t2f": (0.0, 0.45, 0.60, 0.10, 1.30, 0.80, 1.00),
}
SPACING = (2.0, 2.0, 2.0)  # (z, y, x) mm
SHAPE = (64, 80, 64)  # (z, y, x)
LR_AXIS = 2  # x runs left-right


def _grid() -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    z, y, x = (np.arange(n, dtype=np.float32) * s - (n - 1) * s / 2 for n, s in zip(SHAPE, SPACING))
    return np.meshgrid(z, y, x, indexing="ij")


def _smooth_noise(seed: int, sigma: float = 3.0) -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=SHAPE).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def tissue(seed: int = 0, tumour_at: Tuple[float, float, float] = (6.0, -10.0, -30.0),
           tumour_mm: float = 22.0) -> np.ndarray:
    """Tissue codes (z, y, x): brain ellipsoid, gyri from a seeded noise field, ventricles, tumour."""
    z, y, x = _grid()
    r = np.sqrt((z / 55.0) ** 2 + (y / 70.0) ** 2 + (x / 60.0) ** 2)
    out = np.zeros(SHAPE, np.uint8)
    brain = r <= 1.0
    out[brain] = WM
    cortex = brain & ((r > 0.78 + 0.08 * _smooth_noise(seed)) | (_smooth_noise(seed + 1, 2.0) > 1.2))
    out[cortex] = GM
    for side in (-1, 1):  # two lateral ventricles beside the midline
        v = ((z - 5) / 12.0) ** 2 + ((y + 5) / 25.0) ** 2 + ((x - side * 9.0) / 5.0) ** 2 <= 1.0
        out[brain & v] = CSF
    t = np.sqrt((z - tumour_at[0]) ** 2 + (y - tumour_at[1]) ** 2 + (x - tumour_at[2]) ** 2)
    if tumour_mm > 0:
        out[brain & (t <= tumour_mm)] = SNFH
        out[brain & (t <= 0.55 * tumour_mm)] = ET
        out[brain & (t <= 0.35 * tumour_mm)] = NETC
    return out


def images_of(tissues: np.ndarray, seed: int = 0, noise: float = 0.03) -> Dict[str, np.ndarray]:
    """The four sequences (float32, background 0) of a tissue map."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, contrast in CONTRAST.items():
        values = np.asarray(contrast, np.float32)[tissues]
        values = values + rng.normal(0, noise, tissues.shape).astype(np.float32) * (tissues > 0)
        out[key] = np.clip(values, 0.01, None) * 1000.0 * (tissues > 0)
    return out


def case(seed: int = 0, **kw) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """(images, internal label map) of a phantom case."""
    t = tissue(seed, **kw)
    return images_of(t, seed), LABEL_OF[t]


def write(folder: Path, case_id: str, images: Dict[str, np.ndarray], label: Optional[np.ndarray] = None,
          swap: Optional[Tuple[str, str]] = None) -> Dict[str, Path]:
    """Write a phantom case as BraTS 2023-named NIfTI files (``swap``: two sequences' files exchanged)."""
    import SimpleITK as sitk

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = {k: k for k in images}
    if swap:
        names[swap[0]], names[swap[1]] = swap[1], swap[0]
    paths = {}
    for key, arr in list(images.items()) + ([("seg", label)] if label is not None else []):
        image = sitk.GetImageFromArray(np.asarray(arr, np.int16 if key != "seg" else np.uint8))
        image.SetSpacing(SPACING[::-1])
        image.SetOrigin(tuple(-(n - 1) * s / 2 for n, s in zip(SHAPE[::-1], SPACING[::-1])))
        path = folder / f"{case_id}-{names.get(key, key)}.nii.gz"
        sitk.WriteImage(image, str(path), True)
        paths[names.get(key, key)] = path
    return paths
