"""SHA-256 checksums of files (streamed; no whole-file reads), and whether the weights fit ``model.json``."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

from voxmmsd.io.digest import CHUNK as CHUNK  # re-exported: models, downloads and inputs share one hasher
from voxmmsd.io.digest import sha256_file as sha256_file

# -- does model.json describe the weights? ---------------------------------------------------

def _safetensors_header(path: Path) -> Dict[str, Any]:
    """The JSON header of a ``.safetensors`` file (no tensor is read; no PyTorch)."""
    from voxmmsd.errors import ModelError

    try:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise ValueError("shorter than its header")
            n = struct.unpack("<Q", raw)[0]
            if n > 100 << 20:
                raise ValueError(f"header of {n} bytes")
            header = json.loads(f.read(n).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a table")
        return header
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not a readable safetensors file ({exc}). Install or import the model "
                         f"again.") from None


def safetensors_shapes(path: Path) -> Dict[str, Tuple[int, ...]]:
    """Tensor name -> shape, from a ``.safetensors`` file's JSON header (no tensor is read; no PyTorch)."""
    from voxmmsd.errors import ModelError

    header = _safetensors_header(path)
    try:
        return {k: tuple(int(s) for s in v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable safetensors file ({exc}). Install or import the model "
                         f"again.") from None


def weights_identity(path: Path) -> Dict[str, Any]:
    """What the weights say they are: the ``voxmmsd`` record (id, version, network) that
    :func:`voxmmsd.models.package.save_package` stores in the file's metadata; {} when there is none."""
    meta = _safetensors_header(path).get("__metadata__") or {}
    try:
        record = json.loads(meta.get("voxmmsd", "{}")) if isinstance(meta, dict) else {}
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def check_weights_identity(weights: Path, meta: Mapping[str, Any], where: Path) -> None:
    """Refuse weights whose own record names another model id or version than ``model.json`` (``where``): the
    checksums in model.json only say the files are the ones listed, not that they belong to this version."""
    from voxmmsd.errors import ModelError

    own = weights_identity(weights)
    for key in ("id", "version"):
        if key in own and str(own[key]) != str(meta.get(key)):
            raise ModelError(f"{weights} does not belong to {where}: the weights say they are {own.get('id')} "
                             f"{own.get('version')}, model.json says {meta.get('id')} {meta.get('version')}. "
                             f"The package mixes two models; install or import the right one again.")


def expected_unet_shapes(network: Mapping[str, Any]) -> Dict[str, Tuple[int, ...]]:
    """Shapes of the convolution weights a U-Net with these settings (``model.json`` ``network``) has.

    A fold ensemble (``members`` > 1) has each member's tensors under ``members.<i>.``.
    """
    members = int(network.get("members", 1))
    one = _single_unet_shapes(network)
    if members <= 1:
        return one
    return {f"members.{i}.{k}": v for i in range(members) for k, v in one.items()}


def _single_unet_shapes(network: Mapping[str, Any]) -> Dict[str, Tuple[int, ...]]:
    ch = [int(c) for c in network.get("channels", (32, 64, 128, 256, 512))]
    cin = int(network.get("in_channels", 4))
    k = int(network.get("num_classes", 4))
    out: Dict[str, Tuple[int, ...]] = {
        "encoder.in_conv.conv_conv.0.weight": (ch[0], cin, 3, 3, 3),
        "encoder.in_conv.conv_conv.4.weight": (ch[0], ch[0], 3, 3, 3),
        "decoder.out_conv.weight": (k, ch[0], 1, 1, 1),
    }
    for i in range(1, 5):
        out[f"encoder.down{i}.maxpool_conv.1.conv_conv.0.weight"] = (ch[i], ch[i - 1], 3, 3, 3)
        out[f"encoder.down{i}.maxpool_conv.1.conv_conv.4.weight"] = (ch[i], ch[i], 3, 3, 3)
        deep, skip = ch[5 - i], ch[4 - i]
        out[f"decoder.up{i}.conv1x1.weight"] = (skip, deep, 1, 1, 1)
        out[f"decoder.up{i}.conv.conv_conv.0.weight"] = (skip, 2 * skip, 3, 3, 3)
        out[f"decoder.up{i}.conv.conv_conv.4.weight"] = (skip, skip, 3, 3, 3)
    return out


def check_weights_match(weights: Path, network: Mapping[str, Any], where: Path) -> None:
    """Refuse weights whose tensors do not have the shapes ``network`` (from ``where``) describes."""
    from voxmmsd.errors import ModelError

    have = safetensors_shapes(weights)
    for name, shape in expected_unet_shapes(network).items():
        got = have.get(name)
        if got is None:
            raise ModelError(f"{weights} does not match {where}: it has no tensor {name}. The package is "
                             f"inconsistent; export it again.")
        if got != shape:
            what = ""
            if name.endswith("encoder.in_conv.conv_conv.0.weight") and got[1] != shape[1]:
                what = f" (the weights take {got[1]} input channels, model.json says {shape[1]})"
            elif name.endswith("decoder.out_conv.weight") and got[0] != shape[0]:
                what = f" (the weights give {got[0]} classes, model.json says {shape[0]})"
            raise ModelError(f"{weights} does not match {where}: {name} has shape {list(got)}, model.json's network "
                             f"implies {list(shape)}{what}. The package is inconsistent; export it again.")
