"""Model packages: a folder holding ``model.json``, ``weights.safetensors`` and (normally) ``model.onnx``.

``model.json`` is checked against ``schema.json``; the SHA-256 of each file it lists is
verified on load, so a damaged or altered file is refused (:class:`ModelError`).
Loading needs no PyTorch: the weights are only read when the PyTorch backend asks.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from voxmmsd.errors import ModelError
from voxmmsd.io.access import check_openable
from voxmmsd.io.atomic import ensure_writable_dir, write_json
from voxmmsd.io.discovery import SEQUENCES
from voxmmsd.io.labels import BRATS2023, LABEL_TABLE, LabelInfo
from voxmmsd.models.integrity import check_weights_identity, check_weights_match, sha256_file
from voxmmsd.models.limits import check_package_values
from voxmmsd.preprocessing import PreprocessConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from voxmmsd.nets.config import UNetConfig

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"
ONNX = "model.onnx"
SCHEMA_FILE = Path(__file__).with_name("schema.json")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def load_schema() -> Dict[str, Any]:
    with open(SCHEMA_FILE, encoding="utf-8") as f:
        return json.load(f)


def label_entries(num_classes: int) -> List[Dict[str, Any]]:
    """``labels`` of model.json for a network with ``num_classes`` outputs (class index = label value)."""
    out = []
    for info in LABEL_TABLE:
        if info.value < num_classes:
            out.append({"value": info.value, "key": info.key, "name": info.name,
                        "color": [float(c) for c in info.color],
                        "snomed": {"category": list(info.category), "type": list(info.type)}})
    return out


@dataclass(frozen=True)
class ModelPackage:
    """A validated, checksum-verified model package."""

    folder: Path
    meta: Dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.meta["id"])

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def sequences(self) -> Tuple[str, ...]:
        return tuple(self.meta["sequences"])

    @property
    def tolerates_missing(self) -> bool:
        return bool(self.meta["tolerates_missing"])

    @property
    def preprocessing(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.meta["preprocessing"])

    @property
    def network(self) -> Dict[str, Any]:
        """Network settings as stored (:meth:`unet_config` gives the typed config)."""
        return dict(self.meta["network"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["network"]["num_classes"])

    @property
    def inference(self) -> Dict[str, Any]:
        return dict(self.meta.get("inference") or {})

    @property
    def weights_path(self) -> Path:
        return self.folder / WEIGHTS

    @property
    def onnx_path(self) -> Optional[Path]:
        return self.folder / ONNX if ONNX in self.meta["files"] else None

    @property
    def label_table(self) -> Tuple[LabelInfo, ...]:
        """The package's labels as :class:`LabelInfo` (for writers)."""
        out = []
        for e in self.meta["labels"]:
            sn = e.get("snomed") or {}
            out.append(LabelInfo(int(e["value"]), str(e["key"]), str(e["name"]), tuple(e["color"]),  # type: ignore[arg-type]
                                 tuple(sn.get("category", ("", "", ""))),  # type: ignore[arg-type]
                                 tuple(sn.get("type", ("", "", "")))))  # type: ignore[arg-type]
        return tuple(out)

    def unet_config(self) -> "UNetConfig":
        from voxmmsd.nets.config import UNetConfig  # torch-free

        return UNetConfig.from_dict(self.meta["network"])

    def load_state_dict(self) -> Dict[str, "torch.Tensor"]:
        from voxmmsd.nets.weights import load_weights

        state, _ = load_weights(self.weights_path)
        return state

    def summary(self) -> str:
        return f"{self.id} {self.version} ({self.name})"


def _validate(meta: Any, where: Path) -> None:
    import jsonschema

    try:
        jsonschema.validate(meta, load_schema())
    except jsonschema.ValidationError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ModelError(f"{where} is not a valid model description: at {path}: {exc.message}. "
                         f"Re-export the model or fix the file.") from None


def read_model_json(folder: Path) -> Dict[str, Any]:
    """The parsed and schema-checked ``model.json`` of ``folder`` (no checksum verification)."""
    folder = Path(folder)
    path = folder / MODEL_JSON
    if not folder.is_dir():
        raise ModelError(f"Model folder not found: {folder}. Give a model package folder or a model id "
                         f"('voxmmsd models list').")
    if not path.is_file():
        raise ModelError(f"{folder} is not a model package: it has no {MODEL_JSON}.")
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is damaged (not valid JSON: {exc}). Install or import the model again.") from None
    _validate(meta, path)
    return meta


def verify_files(folder: Path, meta: Mapping[str, Any]) -> None:
    """Check that every file listed in ``meta['files']`` is a readable regular file with its recorded SHA-256."""
    for name, digest in meta["files"].items():
        f = Path(folder) / name
        if not f.exists() and not f.is_symlink():
            raise ModelError(f"Model package {folder} is incomplete: {name} is missing. "
                             f"Install or import the model again.")
        check_openable(f, f"model file {name} of {folder}", error=ModelError)  # never hashes a pipe or device
        actual = sha256_file(f)
        if actual != digest:
            raise ModelError(f"Model package {folder} has been tampered with or damaged: the SHA-256 of {name} "
                             f"is {actual[:12]}..., model.json records {digest[:12]}.... Do not use it; install "
                             f"or import the model again from a trusted source.")


def safe_name(value: Any, what: str, where: Any = None) -> str:
    """``value`` if it can be one folder name (letters, digits, ``. _ + -``; not ``.``/``..``), else ModelError.

    Model ids and versions become cache folders (``models/<id>/<version>``) and download names.
    """
    text = str(value)
    if not _SAFE.match(text) or ".." in text:
        place = f" in {where}" if where is not None else ""
        raise ModelError(f"Model {what} {text!r}{place} is not a safe name: use letters, digits and . _ + - "
                         f"(starting with a letter or digit, no '..'); it becomes a folder name. Refused.")
    return text


def check_onnx_input(shape: Sequence[Any], package: "ModelPackage") -> None:
    """Refuse an ONNX graph whose input channels differ from the package's sequences."""
    ch = shape[1] if len(shape) > 1 else None
    if len(shape) != 5 or (isinstance(ch, int) and ch != len(package.sequences)):
        raise ModelError(f"{package.onnx_path} does not match {package.folder / MODEL_JSON}: the ONNX graph takes "
                         f"input of shape {list(shape)}, but the package lists {len(package.sequences)} sequences "
                         f"({', '.join(package.sequences)}) and needs (N, {len(package.sequences)}, D, H, W). "
                         f"Export the model again ('voxmmsd export').")


def load_package(folder: Path, verify: bool = True) -> ModelPackage:
    """Load and validate the package in ``folder`` (schema, safe id/version, files, checksums, and that the
    weights' shapes fit ``model.json``'s network). Needs no PyTorch."""
    folder = Path(folder)
    meta = read_model_json(folder)
    safe_name(meta["id"], "id", folder / MODEL_JSON)
    safe_name(meta["version"], "version", folder / MODEL_JSON)
    check_package_values(meta, folder / MODEL_JSON)  # the one range check of the values segment relies on
    if verify:
        verify_files(folder, meta)
    pkg = ModelPackage(folder, meta)
    if pkg.meta["network"]["in_channels"] != len(pkg.sequences):
        raise ModelError(f"{folder / MODEL_JSON}: the network takes {pkg.meta['network']['in_channels']} channels "
                         f"but {len(pkg.sequences)} sequences are listed. Fix the package.")
    if verify and pkg.weights_path.is_file():
        check_weights_match(pkg.weights_path, pkg.meta["network"], folder / MODEL_JSON)
        check_weights_identity(pkg.weights_path, meta, folder / MODEL_JSON)
    return pkg


def build_meta(network: "UNetConfig", preprocessing: PreprocessConfig, *, model_id: str, version: str,
               sequences: Sequence[str], tolerates_missing: bool, training: Optional[Dict[str, Any]],
               metrics: Optional[Dict[str, Any]], description: str, name: Optional[str], license: str,
               citation: str, inference: Optional[Dict[str, Any]], files: Dict[str, str]) -> Dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "id": model_id,
        "version": str(version),
        "name": name or model_id,
        "description": description,
        "sequences": list(sequences),
        "tolerates_missing": bool(tolerates_missing),
        "labels": label_entries(network.num_classes),
        "label_convention": BRATS2023,
        "preprocessing": preprocessing.to_dict(),
        "network": network.to_dict(),
        "inference": dict(inference or {"patch_size": None, "overlap": 0.5, "tta": False}),
        "training": dict(training or {}),
        "metrics": dict(metrics or {}),
        "license": license,
        "citation": citation,
        "files": files,
    }


def save_package(folder: Path, state_dict: Mapping[str, "torch.Tensor"], network: "UNetConfig",
                 preprocessing: PreprocessConfig, *, model_id: str, version: str,
                 sequences: Sequence[str] = SEQUENCES, tolerates_missing: bool = False,
                 training: Optional[Dict[str, Any]] = None, metrics: Optional[Dict[str, Any]] = None,
                 export_onnx: bool = True, description: str = "", name: Optional[str] = None,
                 license: str = "research use only", citation: str = "",
                 inference: Optional[Dict[str, Any]] = None, half_precision: bool = False) -> Path:
    """Write a model package to ``folder`` atomically (built in a temporary folder, then renamed).

    ``state_dict`` must fit ``network`` exactly. An existing package at ``folder`` is
    replaced only once the new one is complete. ``half_precision`` stores the weights (and
    the ONNX file's weights) as float16 to halve the package; computation stays float32.
    """
    from voxmmsd.models.export import compact_onnx_fp16, verify_onnx
    from voxmmsd.models.export import export_onnx as _export
    from voxmmsd.nets.ensemble import build_network
    from voxmmsd.nets.weights import load_into, save_weights

    folder = Path(folder)
    if network.in_channels != len(sequences):
        raise ModelError(f"network.in_channels={network.in_channels} but {len(sequences)} sequences given.")
    ensure_writable_dir(folder.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=str(folder.parent)))
    try:
        model = build_network(network)
        if half_precision:  # round first, so that both files hold the same numbers
            state_dict = {k: (v.half() if v.is_floating_point() else v) for k, v in state_dict.items()}
        load_into(model, state_dict, strict=True)
        model.eval()
        state = {k: v for k, v in model.state_dict().items()}
        save_weights(state, tmp / WEIGHTS, metadata={"id": model_id, "version": str(version),
                                                     "network": network.to_dict()},
                     dtype=torch_half() if half_precision else None)
        files = {WEIGHTS: sha256_file(tmp / WEIGHTS)}
        if export_onnx:
            _export(model, tmp / ONNX, network.in_channels)
            if half_precision:
                compact_onnx_fp16(tmp / ONNX)
                verify_onnx(model, tmp / ONNX, network.in_channels, tolerance=1e-2)
            files[ONNX] = sha256_file(tmp / ONNX)
        meta = build_meta(network, preprocessing, model_id=model_id, version=version, sequences=sequences,
                          tolerates_missing=tolerates_missing, training=training, metrics=metrics,
                          description=description, name=name, license=license, citation=citation,
                          inference=inference, files=files)
        _validate(json.loads(json.dumps(meta, default=str)), tmp / MODEL_JSON)
        write_json(tmp / MODEL_JSON, meta)
        os.chmod(tmp, 0o755)
        replace_folder(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("model package written: %s", folder)
    return folder


def torch_half() -> Any:
    import torch

    return torch.float16


def replace_folder(new: Path, target: Path) -> None:
    """Move the complete folder ``new`` to ``target``; an existing ``target`` is removed only afterwards."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.rename(target, old)
    try:
        os.rename(new, target)
    except OSError:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
