"""ONNX export of the U-Net: legacy (TorchScript) exporter, opset 17, dynamic N, D, H, W.

The dynamo exporter fixes the batch size and needs a multiple of 16 per axis at export
time (PERFORMANCE.md); the legacy one keeps every axis dynamic. BatchNorm folds into the
convolutions. Every export is checked against PyTorch with ONNX Runtime.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Tuple

import numpy as np

from voxmmsd.errors import ModelError
from voxmmsd.io.atomic import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


def export_onnx(model: "nn.Module", path: Path, in_channels: int, opset: int = OPSET, verify: bool = True,
                verify_shape: Tuple[int, int, int] = (32, 32, 48), tolerance: float = 1e-3) -> Path:
    """Export ``model`` (eval mode, CPU, fp32) to ``path`` atomically; optionally verify it.

    Input ``image`` (N, C, D, H, W) float32, output ``logits`` (N, K, D, H, W); N, D, H, W
    are dynamic (D, H, W multiples of 16 at run time).
    """
    import torch

    model = model.eval().to("cpu").float()
    dummy = torch.zeros((1, in_channels, 32, 32, 32), dtype=torch.float32)
    dyn = {0: "batch", 2: "depth", 3: "height", 4: "width"}
    with atomic_path(Path(path)) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: dyn, OUTPUT_NAME: dyn}, do_constant_folding=True)
        if verify:
            verify_onnx(model, tmp, in_channels, verify_shape, tolerance)
    return Path(path)


def verify_onnx(model: "nn.Module", path: Path, in_channels: int, shape: Tuple[int, int, int] = (32, 32, 48),
                tolerance: float = 1e-3) -> float:
    """Run ``model`` and the ONNX file on the same random input; return the max abs difference.

    Raises :class:`ModelError` if it exceeds ``tolerance`` times the logits' range.
    """
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(0)
    x = rng.random((1, in_channels) + tuple(shape), dtype=np.float32)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {INPUT_NAME: x})[0]
    diff = float(np.abs(got - ref).max())
    scale = max(float(np.abs(ref).max()), 1.0)
    log.info("ONNX export verified: max |onnx - torch| = %.3g (logit scale %.3g)", diff, scale)
    if got.shape != ref.shape or diff > tolerance * scale:
        raise ModelError(f"ONNX export {path} disagrees with PyTorch (max difference {diff:.3g}, "
                         f"shapes {got.shape} vs {ref.shape}). Report this as a bug.")
    return diff


def compact_onnx_fp16(path: Path, min_elements: int = 1024) -> Path:
    """Store the large float32 weights of an ONNX file as float16, each followed by a Cast to float32.

    Halves the file; ONNX Runtime folds the casts when the session starts, so inference still
    runs in float32. The weights lose what float16 cannot hold (relative error ~5e-4).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    model = onnx.load(str(path))
    graph = model.graph
    casts, keep, halves = [], [], []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            half = numpy_helper.to_array(init).astype(np.float16)
            halves.append(numpy_helper.from_array(half, init.name + "__fp16"))
            casts.append(helper.make_node("Cast", [init.name + "__fp16"], [init.name], to=TensorProto.FLOAT,
                                          name=init.name + "__cast"))
        else:
            keep.append(init)
    nodes = casts + list(graph.node)
    del graph.initializer[:]
    graph.initializer.extend(keep + halves)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    log.info("ONNX weights stored as float16: %d tensors", len(halves))
    return path
