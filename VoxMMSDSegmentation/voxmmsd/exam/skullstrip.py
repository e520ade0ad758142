"""Brain extraction (skull stripping) with deepbet, for exams that still show skull and scalp.

deepbet (Fisch et al., "deepbet: Fast brain extraction of T1-weighted MRI using Convolutional
Neural Networks", Computers in Biology and Medicine 2024; MIT licence) ships its two TorchScript
networks inside its wheel, so ``pip install deepbet`` is all it needs: no download at run time.
It needs PyTorch. An ONNX-only install (no PyTorch) cannot strip a skull: :func:`availability`
says why, and the caller refuses to segment a head (a plausible-looking wrong answer is worse
than none).

The networks' files are checked against the SHA-256 recorded here before they are loaded
(TorchScript archives are code; only the exact published files are accepted).

The model sees the image on its own grid, reoriented (axes permuted and flipped, no
resampling) to the RAS order deepbet was trained on; the mask comes back on the same grid.
deepbet crops to the brain's box and resizes the box to 256^3, so thick-slice series work too.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from voxmmsd.errors import ConfigError, InputError
from voxmmsd.io.geometry import Geometry, resample_to
from voxmmsd.models.integrity import sha256_file

log = logging.getLogger(__name__)

TOOL = "deepbet"
#: SHA-256 of the networks in the deepbet 1.0.2 wheel (data/models/)
MODEL_SHA256: Dict[str, str] = {
    "bbox_model.pt": "39a7b2b5f799faa1391ea97bfcdc0b9299f20d84f2316a4ff8918dc4685e40aa",
    "model.pt": "de8ee7c69654d0dd3935dc4a5d84571d8ecf4637a6bfc01df399c4c2bc86e0fd",
}
#: probability threshold of the brain mask (deepbet's default)
THRESHOLD = 0.5
#: a mask smaller than this (mL) is not a brain: extraction failed
MIN_BRAIN_ML = 300.0
MAX_BRAIN_ML = 2600.0

INSTALL_HINT = ("Install it with: pip install 'torch==<your version>' 'voxmmsd[skullstrip]' (deepbet needs PyTorch), "
                "or strip the skull yourself (e.g. HD-BET or SynthStrip) and run with --skull-strip off.")


def availability() -> Optional[str]:
    """None when deepbet can run here, else why not (a sentence)."""
    for module, what in (("torch", "PyTorch"), ("deepbet", "deepbet")):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"brain extraction needs {what}, which is not installed"
    return None


class BrainExtractor:
    """deepbet's two networks, loaded once (verified by SHA-256); :meth:`mask` per image."""

    def __init__(self, device: str = "auto") -> None:
        why = availability()
        if why is not None:
            raise ConfigError(f"Cannot strip the skull: {why}. {INSTALL_HINT}")
        import torch
        from deepbet import utils as dbu
        from deepbet.bet import BrainExtraction

        folder = Path(dbu.DATA_PATH) / "models"
        for name, digest in MODEL_SHA256.items():
            path = folder / name
            got = sha256_file(path) if path.is_file() else "missing"
            if got != digest:
                raise ConfigError(f"deepbet's network {path} is {got if got == 'missing' else 'SHA-256 ' + got}, "
                                  f"not the published {digest}: refusing to load it. Reinstall deepbet 1.0.2 "
                                  f"(pip install --force-reinstall deepbet==1.0.2).")
        use_gpu = device != "cpu" and torch.cuda.is_available()
        self.device = "cuda" if use_gpu else "cpu"
        self._bet = BrainExtraction(no_gpu=not use_gpu, model_path=str(folder / "model.pt"),
                                    bbox_model_path=str(folder / "bbox_model.pt"))
        self.version = _version()

    def probability(self, image: sitk.Image) -> sitk.Image:
        """Brain probability (float32) on ``image``'s grid."""
        ras = sitk.DICOMOrient(image, "RAS")  # i -> right, j -> anterior, k -> superior (nibabel's RAS+)
        x = np.ascontiguousarray(sitk.GetArrayFromImage(ras).astype(np.float32).transpose(2, 1, 0))
        with deterministic():
            prob = self._bet.run_model(x)
        out = sitk.GetImageFromArray(np.ascontiguousarray(prob.transpose(2, 1, 0)).astype(np.float32))
        out.CopyInformation(ras)
        return resample_to(out, Geometry.of(image), label=True)  # RAS voxels back onto the image's, one for one

    def mask(self, image: sitk.Image, what: str = "image") -> sitk.Image:
        """The brain mask (uint8 0/1) of ``image`` on its grid: deepbet's probability > 0.5, the largest
        connected part, holes filled. Raises :class:`InputError` when no brain-sized mask comes out."""
        prob = sitk.GetArrayFromImage(self.probability(image))
        mask = clean_mask(prob > THRESHOLD)
        ml = float(mask.sum()) * float(np.prod(image.GetSpacing())) / 1000.0
        if not MIN_BRAIN_ML <= ml <= MAX_BRAIN_ML:
            raise InputError(f"Brain extraction on {what} found {ml:.0f} mL of brain, not a brain's volume "
                             f"({MIN_BRAIN_ML:.0f}-{MAX_BRAIN_ML:.0f} mL): the image may not be a T1-weighted head "
                             f"MRI. Strip the skull yourself and run with --skull-strip off.")
        out = sitk.GetImageFromArray(mask.astype(np.uint8))
        out.CopyInformation(image)
        return out

    def describe(self) -> Dict[str, Any]:
        return {"tool": TOOL, "version": self.version, "device": self.device, "threshold": THRESHOLD}


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """deepbet's networks without a random choice of kernels: the same image gives the same mask on every run
    (deepbet draws nothing at random; on a GPU, cuDNN's autotuner and non-deterministic kernels could)."""
    import torch

    cudnn = torch.backends.cudnn
    before = (cudnn.deterministic, cudnn.benchmark)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = before


@functools.lru_cache(maxsize=2)
def shared_extractor(device: str = "auto") -> BrainExtractor:
    """One :class:`BrainExtractor` per device for the whole process (a batch loads the networks once)."""
    return BrainExtractor(device)


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected part of ``mask``, its holes filled (boolean, same shape)."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(largest)


def _version() -> str:
    import importlib.metadata as md

    try:
        return md.version(TOOL)
    except md.PackageNotFoundError:  # pragma: no cover - found by availability()
        return "unknown"
