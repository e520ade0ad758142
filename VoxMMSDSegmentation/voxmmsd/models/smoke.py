"""Does a package run? The checks ``models verify`` adds to loading: what ``segment`` relies on, tried.

Loading (:func:`voxmmsd.models.package.load_package`) checks the schema, the value ranges, the checksums, the
weights' shapes and identity. Here: the ONNX graph has one input of the package's sequences and one output of
its classes (:func:`check_onnx_graph`, also run by the ONNX backend), and a forward pass on a small input gives
finite scores of the declared shape, through ONNX Runtime and (when installed) PyTorch
(:func:`forward_check`). A package that passes can be handed to ``segment`` without a traceback on its first case.
"""

from __future__ import annotations

from typing import Any, List, Sequence

import numpy as np

from voxmmsd.errors import ModelError

#: the forward pass's input edge (voxels): the smallest a 5-level U-Net takes
SMOKE_EDGE = 32


def _describe(items: Sequence[Any]) -> str:
    return ", ".join(f"{i.name} {list(i.shape)}" for i in items)


def check_onnx_graph(session: Any, package: Any) -> None:
    """Refuse an ONNX graph whose inputs or outputs are not (N, sequences, D, H, W) -> (N, classes, D, H, W)."""
    from voxmmsd.models.package import check_onnx_input

    inputs, outputs = session.get_inputs(), session.get_outputs()
    where = f"{package.onnx_path} does not match {package.folder / 'model.json'}"
    if len(inputs) != 1:
        raise ModelError(f"{where}: the ONNX graph has {len(inputs)} inputs ({_describe(inputs)}); it needs one "
                         f"image input. Export the model again ('voxmmsd export').")
    check_onnx_input(inputs[0].shape, package)
    k = package.num_classes
    if len(outputs) != 1:
        raise ModelError(f"{where}: the ONNX graph has {len(outputs)} outputs ({_describe(outputs)}); it needs one "
                         f"output of (N, {k}, D, H, W) class scores. Export the model again ('voxmmsd export').")
    shape = outputs[0].shape
    if len(shape) != 5 or (isinstance(shape[1], int) and shape[1] != k):
        raise ModelError(f"{where}: the ONNX graph's output has shape {list(shape)}, but model.json declares "
                         f"{k} classes: (N, {k}, D, H, W) is needed. Export the model again ('voxmmsd export').")


def check_scores(scores: Any, x_shape: Sequence[int], package: Any, what: str) -> np.ndarray:
    """``scores`` of input shape ``x_shape`` as (N, classes, D, H, W), or :class:`ModelError`."""
    out = np.asarray(scores)
    want = (int(x_shape[0]), package.num_classes) + tuple(int(v) for v in x_shape[2:])
    if tuple(out.shape) != want:
        raise ModelError(f"{what} of {package.summary()} gives scores of shape {list(out.shape)} for an input of "
                         f"{list(x_shape)}; model.json declares {list(want)}. The package is inconsistent; export "
                         f"it again.")
    return out


def _input(package: Any) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((1, len(package.sequences)) + (SMOKE_EDGE,) * 3, dtype=np.float32)


def forward_check(package: Any) -> List[str]:
    """Run the package's networks once on a small input; the backends that passed (``onnx``, ``torch``).

    Raises :class:`ModelError` when a network cannot load, or its scores have the wrong shape or are not finite.
    """
    x = _input(package)
    done: List[str] = []
    if package.onnx_path is not None:
        try:
            import onnxruntime as ort
        except ImportError:
            ort = None
        if ort is not None:
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            try:
                session = ort.InferenceSession(str(package.onnx_path), sess_options=opts,
                                               providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise ModelError(f"ONNX Runtime cannot load {package.onnx_path}: {str(exc).splitlines()[0]}. "
                                 f"Export the model again ('voxmmsd export').") from None
            check_onnx_graph(session, package)
            try:
                scores = session.run(None, {session.get_inputs()[0].name: x})[0]
            except Exception as exc:
                raise ModelError(f"ONNX Runtime cannot run {package.onnx_path} on a {SMOKE_EDGE}^3 input: "
                                 f"{str(exc).splitlines()[0]}. Export the model again.") from None
            _finite(check_scores(scores, x.shape, package, "The ONNX graph"), package, "The ONNX graph")
            done.append("onnx")
    if _torch_available():
        import torch

        from voxmmsd.nets.ensemble import build_network
        from voxmmsd.nets.weights import load_into

        model = build_network(package.unet_config())  # one U-Net, or a fold ensemble of them
        load_into(model, package.load_state_dict(), strict=True)
        with torch.no_grad():
            scores = model.eval()(torch.from_numpy(x)).numpy()
        _finite(check_scores(scores, x.shape, package, "The weights"), package, "The weights")
        done.append("torch")
    return done


def _finite(scores: np.ndarray, package: Any, what: str) -> None:
    if not np.isfinite(scores).all():
        bad = int((~np.isfinite(scores)).sum())
        raise ModelError(f"{what} of {package.summary()} give {bad} NaN or infinite score(s) on a plain input: the "
                         f"weights are broken. Install or import the model again.")


def _torch_available() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False
