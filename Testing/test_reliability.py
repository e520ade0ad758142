"""Every fault a new user may cause, tried as a table: bad input, replaced results, models, batch, leftovers.

Each entry of :data:`FAULTS` is one fault, with its area and the outcome it must have
(``refused``: a clear message naming the file and the fix, exit status 1, no traceback, nothing
written; ``warned``: a result plus a warning; ``kept``: what the user had stays as it was;
``listed``: the batch goes on and lists the case with the reason; ``cleaned``: leftovers removed).
``docs/reliability.md`` lists the same faults with their outcomes; :func:`test_docs_list_every_fault`
keeps the two in step. All cases are synthetic and small (a tiny 4-channel U-Net package).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest
import SimpleITK as sitk
from test_models_package import build_tiny_package
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.errors import InputError, ModelError, VoxMMSDError

ROOT = Path(__file__).resolve().parents[1]
GEOM = synthetic.default_geometry((32, 40, 28))


@dataclass(frozen=True)
class Fault:
    name: str
    area: str
    outcome: str  # refused | warned | kept | listed | cleaned
    run: Callable[["Env"], None]


FAULTS: List[Fault] = []


def fault(area: str, outcome: str) -> Callable[[Callable[["Env"], None]], Callable[["Env"], None]]:
    def register(fn: Callable[["Env"], None]) -> Callable[["Env"], None]:
        FAULTS.append(Fault(fn.__name__, area, outcome, fn))
        return fn
    return register


class Env:
    """One fault's sandbox: a fresh synthetic case, the tiny package, a cache home, the captured log."""

    def __init__(self, tmp: Path, pkg: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
        self.tmp, self.pkg, self.caplog, self.monkeypatch = tmp, pkg, caplog, monkeypatch
        self.home = tmp / "home"
        monkeypatch.setenv("VOXMMSD_HOME", str(self.home))
        self._case = None

    @property
    def case(self) -> Path:
        if self._case is None:
            self._case = self.tmp / "c"
            synthetic.write_case(self._case, "c", seed=3, geometry=GEOM, with_label=False)
        return self._case

    def seq(self, key: str) -> Path:
        return self.case / f"c-{key}.nii.gz"

    def segment(self, *extra: str, case: object = None, out: object = None) -> int:
        args = ["segment"] + ([str(case or self.case)] if "--batch" not in extra and not any(
            a.startswith("--t1") or a.startswith("--t2") for a in extra) else [])
        return main(args + ["--out", str(out or self.tmp / "out"), "--model", str(self.pkg), "--backend", "onnx",
                            "--progress", "none", *extra])

    def refused(self, rc: int, *words: str) -> None:
        assert rc == 1, f"expected a refusal, got rc {rc}"
        text = self.caplog.text
        for w in words:
            assert w in text, f"{w!r} not in the message: {text[-800:]}"
        assert "Traceback" not in text

    def image(self, key: str) -> sitk.Image:
        return sitk.ReadImage(str(self.seq(key)))

    def write(self, key: str, array: np.ndarray, like: sitk.Image, path: object = None) -> Path:
        img = sitk.GetImageFromArray(array)
        img.CopyInformation(like)
        p = Path(path) if path else self.seq(key)
        sitk.WriteImage(img, str(p), True)
        return p


def _raw_nifti_with(env: Env, value: float) -> Path:
    """The T1c as float32 NIfTI with one voxel set to ``value`` in the raw bytes (ITK would read it as 0)."""
    img = env.image("t1c")
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    p = env.write("t1c", arr, img)
    raw = bytearray(gzip.decompress(p.read_bytes()))
    offset = int(np.frombuffer(bytes(raw[108:112]), "<f4")[0])
    mid = offset + 4 * (arr.size // 2)
    raw[mid:mid + 4] = np.float32(value).tobytes()
    p.write_bytes(gzip.compress(bytes(raw)))
    return p


def _sha_of_tree(folder: Path) -> Dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- 1. input plausibility, before any compute ------------------------------------------------------

@fault("input", "refused")
def truncated_nii_gz(env: Env) -> None:
    p = env.seq("t1c")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    env.refused(env.segment(), "c-t1c.nii.gz", "truncated")
    assert not (env.tmp / "out").exists()


@fault("input", "refused")
def truncated_uncompressed_nii(env: Env) -> None:
    img = env.image("t2w")
    p = env.case / "c-t2w.nii"
    sitk.WriteImage(img, str(p))
    env.seq("t2w").unlink()
    p.write_bytes(p.read_bytes()[:-5000])
    env.refused(env.segment(), "c-t2w.nii", "truncated", "header describes")


@fault("input", "refused")
def truncated_file_in_training_data(env: Env) -> None:
    from voxmmsd.data.cache import build_cache
    from voxmmsd.io.discovery import find_dataset
    from voxmmsd.preprocessing import PreprocessConfig

    data = synthetic.write_dataset(env.tmp / "train", n=2, geometry=GEOM)
    p = data / "case001" / "case001-t2f.nii.gz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size * 2 // 3])
    with pytest.raises(InputError, match=r"case001-t2f\.nii\.gz.*(truncated|end marker)"):
        build_cache(find_dataset(data), env.tmp / "cache", PreprocessConfig(), show_progress=False)


@fault("input", "refused")
def damaged_gzip_stream(env: Env) -> None:
    p = env.seq("t2f")
    data = bytearray(p.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    p.write_bytes(bytes(data))
    env.refused(env.segment(), "c-t2f.nii.gz")


@fault("input", "refused")
def nan_in_raw_nifti(env: Env) -> None:
    _raw_nifti_with(env, float("nan"))
    env.refused(env.segment(), "c-t1c.nii.gz", "NaN or infinite", "raw data")


@fault("input", "refused")
def inf_in_raw_nifti(env: Env) -> None:
    _raw_nifti_with(env, float("inf"))
    env.refused(env.segment(), "c-t1c.nii.gz", "NaN or infinite")


@fault("input", "refused")
def constant_image(env: Env) -> None:
    img = env.image("t1n")
    env.write("t1n", np.full(sitk.GetArrayFromImage(img).shape, 100, np.int16), img)
    env.refused(env.segment(), "c-t1n.nii.gz", "constant")


@fault("input", "refused")
def near_constant_image_a_mask(env: Env) -> None:
    img = env.image("t2w")
    env.write("t2w", (sitk.GetArrayFromImage(img) > 0).astype(np.int16), img)
    env.refused(env.segment(), "c-t2w.nii.gz", "nearly constant")


@fault("input", "warned")
def nonzero_background(env: Env) -> None:
    img = env.image("t1n")
    env.write("t1n", sitk.GetArrayFromImage(img).astype(np.int16) - 500, img)
    assert env.segment() == 0  # shifted back to a background of 0, as a z-scored image from another pipeline
    report = json.loads((env.tmp / "out" / "report.json").read_text())
    assert "background was -500" in json.dumps(report["warnings"])


@fault("input", "refused")
def same_file_for_all_four_sequences(env: Env) -> None:
    t1c = str(env.seq("t1c"))
    env.refused(env.segment("--t1n", t1c, "--t1c", t1c, "--t2w", t1c, "--t2f", t1c), "same file")


@fault("input", "refused")
def identical_copy_for_two_sequences(env: Env) -> None:
    shutil.copyfile(env.seq("t1c"), env.seq("t2w"))
    env.refused(env.segment(), "identical", "c-t2w.nii.gz")


@fault("input", "refused")
def identical_voxels_other_file(env: Env) -> None:
    img = env.image("t1c")
    env.seq("t2f").unlink()
    sitk.WriteImage(img, str(env.case / "c-t2f.nrrd"))  # same voxels, another format
    env.refused(env.segment(), "identical voxels", "c-t2f.nrrd")


@fault("input", "refused")
def spacing_10mm_in_header(env: Env) -> None:
    for key in ("t1n", "t1c", "t2w", "t2f"):
        img = env.image(key)
        img.SetSpacing((10.0, 10.0, 10.0))
        sitk.WriteImage(img, str(env.seq(key)), True)
    env.refused(env.segment(), "spacing", "header")


@fault("input", "refused")
def impossible_brain_volume(env: Env) -> None:
    for key in ("t1n", "t1c", "t2w", "t2f"):
        img = env.image(key)
        img.SetSpacing((8.0, 8.0, 8.0))  # each spacing allowed, but a 15 L "brain"
        sitk.WriteImage(img, str(env.seq(key)), True)
    env.refused(env.segment(), "mL", "impossible for a head")


@fault("input", "refused")
def tiny_8_cubed_image(env: Env) -> None:
    folder = env.tmp / "tiny"
    g = synthetic.default_geometry((8, 8, 8))
    synthetic.write_case(folder, "tiny", seed=1, geometry=g, with_label=False,
                         phantom=synthetic.Phantom(brain_radii=(3, 3, 3)))
    env.refused(env.segment(case=folder), "(8, 8, 8)", "too small")


@fault("input", "warned")
def unusual_brain_volume_warns(env: Env) -> None:
    assert env.segment() == 0  # the synthetic brain is 36 mL: plausible shape, implausible size
    report = json.loads((env.tmp / "out" / "report.json").read_text())
    text = json.dumps(report["warnings"])
    assert "mL, outside the usual" in text and "voxel spacing" in text


@fault("input", "warned")
def head_not_skull_stripped_detected(env: Env) -> None:
    from scipy import ndimage
    from voxmmsd.io.checks import looks_skull_stripped

    img = env.image("t1c")
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    brain = arr > 0
    skull = ndimage.binary_dilation(brain, iterations=4) & ~brain
    scalp = ndimage.binary_dilation(brain, iterations=7) & ~brain & ~skull
    head = arr.copy()
    head[skull], head[scalp] = 20.0, 700.0  # dark bone between bright scalp and brain, air masked
    assert looks_skull_stripped(arr, img.GetSpacing()).stripped
    masked = looks_skull_stripped(head, img.GetSpacing())
    assert not masked.stripped and "skull" in masked.reason
    noisy = head + np.abs(np.random.default_rng(0).normal(0, 8, head.shape)).astype(np.float32)
    scanner = looks_skull_stripped(noisy, img.GetSpacing())
    assert not scanner.stripped and "background" in scanner.reason


@fault("input", "refused")
def empty_case_folder(env: Env) -> None:
    tolerant = build_tiny_package(env.tmp / "tolerant", tolerates_missing=True, export_onnx=True)
    (env.tmp / "empty").mkdir()
    rc = main(["segment", str(env.tmp / "empty"), "--out", str(env.tmp / "out"), "--model", str(tolerant),
               "--backend", "onnx", "--progress", "none"])  # a model that tolerates missing sequences
    env.refused(rc, "empty", "has no")


@fault("input", "refused")
def two_flairs_in_one_case(env: Env) -> None:
    shutil.copyfile(env.seq("t2f"), env.case / "c_flair.nii.gz")
    env.refused(env.segment(), "More than one T2-FLAIR")


@fault("input", "refused")
def input_error_before_the_model_loads(env: Env) -> None:
    import voxmmsd.infer.predictor as predictor

    def no_backend(*a, **k):
        raise AssertionError("the model was loaded before the images were checked")

    env.monkeypatch.setattr(predictor, "create_backend", no_backend)
    p = env.seq("t2w")
    p.write_bytes(p.read_bytes()[:-300])
    env.refused(env.segment(), "c-t2w.nii.gz")


# -- 2. never replace silently ----------------------------------------------------------------------

@fault("outputs", "kept")
def existing_result_not_overwritten(env: Env) -> None:
    assert env.segment() == 0
    before = _sha_of_tree(env.tmp / "out")
    env.refused(env.segment("--no-qc"), "already holds a result", "--overwrite")
    assert _sha_of_tree(env.tmp / "out") == before


@fault("outputs", "cleaned")
def overwrite_leaves_no_stale_file(env: Env) -> None:
    assert env.segment() == 0 and (env.tmp / "out" / "qc.png").is_file()
    assert env.segment("--no-qc", "--overwrite") == 0
    names = sorted(p.name for p in (env.tmp / "out").iterdir())
    assert names == ["report.json", "segmentation.nii.gz", "segmentation.seg.nrrd"]


@fault("outputs", "refused")
def second_writer_on_the_same_folder(env: Env) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = env.tmp / "out"
        out.mkdir()
        (out / ".voxmmsd.lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                                       "purpose": "segmentation", "started": "now"}))
        env.refused(env.segment(), "in use by another VoxMMSD process", str(sleeper.pid))
        assert not (out / "report.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@fault("leftovers", "cleaned")
def stale_staging_folder_removed(env: Env) -> None:
    stale = env.tmp / "out" / ".staging-crashed"
    stale.mkdir(parents=True)
    (stale / "segmentation.nii.gz").write_bytes(b"half")
    assert env.segment() == 0
    assert not stale.exists() and (env.tmp / "out" / "report.json").is_file()


@fault("leftovers", "cleaned")
def unfinished_result_replaced(env: Env) -> None:
    out = env.tmp / "out"
    out.mkdir()
    (out / "segmentation.nii.gz").write_bytes(b"from a write killed before report.json")
    (out / "qc.png").write_bytes(b"old")
    assert env.segment("--no-qc") == 0  # nothing finished was there: replaced, with a warning
    assert "unfinished result" in env.caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "segmentation.nii.gz", "segmentation.seg.nrrd"]


@fault("leftovers", "cleaned")
def no_empty_output_folder_after_failure(env: Env) -> None:
    env.seq("t1c").write_bytes(b"not an image")
    env.refused(env.segment(), "c-t1c.nii.gz")
    assert not (env.tmp / "out").exists()


@fault("outputs", "refused")
def disk_too_full_before_compute(env: Env) -> None:
    import voxmmsd.infer.outputs as outputs
    import voxmmsd.infer.predictor as predictor

    real = shutil.disk_usage

    def full(path):
        u = real(path)
        return type(u)(u.total, u.total - 1000, 1000)

    def no_backend(*a, **k):
        raise AssertionError("compute started although the disk is full")

    env.monkeypatch.setattr(outputs.shutil, "disk_usage", full)
    env.monkeypatch.setattr(predictor, "create_backend", no_backend)
    env.refused(env.segment(), "Not enough disk space", "MB needed")


@fault("outputs", "kept")
def disk_full_while_writing(env: Env) -> None:
    import voxmmsd.infer.outputs as outputs

    assert env.segment() == 0
    before = _sha_of_tree(env.tmp / "out")

    def enospc(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    env.monkeypatch.setattr(outputs, "write_seg_nrrd", enospc)
    env.refused(env.segment("--overwrite"), "disk is full", "about")
    assert _sha_of_tree(env.tmp / "out") == before  # the previous result is intact


# -- 2. models ----------------------------------------------------------------------------------------

def _other_package(env: Env, seed: int = 7) -> Path:
    return build_tiny_package(env.tmp / f"other{seed}" / "tiny", seed=seed)  # same id@version, other weights


@fault("models", "kept")
def import_same_id_version_refused(env: Env) -> None:
    assert main(["models", "import", str(env.pkg)]) == 0
    installed = env.home / "models" / "tiny" / "0.1"
    before = _sha_of_tree(installed)
    other = _other_package(env)
    env.refused(main(["models", "import", str(other)]), "already installed", "--replace")
    assert _sha_of_tree(installed) == before and main(["models", "verify", "tiny@0.1"]) == 0
    assert main(["models", "import", str(other), "--replace"]) == 0
    assert _sha_of_tree(installed) == _sha_of_tree(other)


@fault("leftovers", "cleaned")
def stale_import_copy_removed(env: Env) -> None:
    stale = env.home / "models" / "tiny" / ".0.1.crashed.tmp"
    stale.mkdir(parents=True)
    (stale / "weights.safetensors").write_bytes(b"half")
    os.utime(stale, (1_000_000_000, 1_000_000_000))  # left by an import interrupted long ago
    assert main(["models", "import", str(env.pkg)]) == 0
    assert not stale.exists() and (env.home / "models" / "tiny" / "0.1" / "model.json").is_file()


@fault("models", "refused")
def model_json_does_not_match_weights(env: Env) -> None:
    bad = env.tmp / "bad"
    shutil.copytree(env.pkg, bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["network"]["channels"] = [8, 16, 32, 64, 128]  # the weights are (4, 8, 16, 32, 64)
    (bad / "model.json").write_text(json.dumps(meta))
    env.refused(main(["models", "verify", str(bad)]), "does not match", "shape")
    env.refused(main(["models", "import", str(bad)]), "does not match")
    assert not (env.home / "models" / "tiny").exists()


@fault("models", "refused")
def model_json_classes_do_not_match_weights(env: Env) -> None:
    bad = env.tmp / "bad"
    shutil.copytree(env.pkg, bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["network"]["num_classes"] = 3
    meta["labels"] = meta["labels"][:3]
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="classes"):
        from voxmmsd.models.package import load_package

        load_package(bad)


@fault("models", "refused")
def onnx_input_channel_mismatch(env: Env) -> None:
    import torch
    from voxmmsd.models.package import save_package
    from voxmmsd.nets.unet import UNetConfig, VoxUNet
    from voxmmsd.preprocessing import PreprocessConfig

    torch.manual_seed(0)
    cfg3 = UNetConfig(in_channels=3, channels=(4, 8, 16, 32, 64))
    three = save_package(env.tmp / "three", VoxUNet(cfg3).state_dict(), cfg3, PreprocessConfig(), model_id="tiny3",
                         version="0.1", sequences=("t1n", "t1c", "t2w"))
    bad = env.tmp / "bad"
    shutil.copytree(env.pkg, bad)
    shutil.copyfile(three / "model.onnx", bad / "model.onnx")
    meta = json.loads((bad / "model.json").read_text())
    meta["files"]["model.onnx"] = hashlib.sha256((bad / "model.onnx").read_bytes()).hexdigest()
    (bad / "model.json").write_text(json.dumps(meta))
    rc = main(["segment", str(env.case), "--out", str(env.tmp / "out"), "--model", str(bad), "--backend", "onnx",
               "--progress", "none"])
    env.refused(rc, "ONNX graph takes", "4 sequences")
    env.refused(main(["models", "verify", str(bad)]), "ONNX graph takes")


def _catalog(env: Env, version: str, url: str = "http://127.0.0.1:9/x.zip") -> None:
    res = env.tmp / "resources"
    res.mkdir(exist_ok=True)
    (res / "catalog.json").write_text(json.dumps({"schema_version": 1, "models": [{
        "id": "tiny", "version": version, "name": "t", "url": url, "size": 10, "sha256": "0" * 64}]}))
    env.monkeypatch.setenv("VOXMMSD_RESOURCES", str(res))


@fault("models", "refused")
def catalog_version_escapes_the_cache(env: Env) -> None:
    _catalog(env, "x/../../dl_escape")
    env.refused(main(["models", "install", "tiny"]), "not a safe name")
    assert not list(env.tmp.rglob("dl_escape*"))


@fault("models", "refused")
def catalog_version_dot_dot(env: Env) -> None:
    _catalog(env, "..")
    env.refused(main(["models", "install", "tiny"]), "not a safe name")


@fault("models", "refused")
def package_id_with_a_path(env: Env) -> None:
    bad = env.tmp / "bad"
    shutil.copytree(env.pkg, bad)
    meta = json.loads((bad / "model.json").read_text())
    meta["id"] = "../../evil"  # (model.json's schema refuses it too)
    (bad / "model.json").write_text(json.dumps(meta))
    env.refused(main(["models", "import", str(bad)]), "../../evil")
    assert not (env.tmp / "evil").exists() and not (env.home / "evil").exists()


@fault("models", "refused")
def model_spec_with_a_path(env: Env) -> None:
    env.refused(main(["segment", str(env.case), "--out", str(env.tmp / "out"), "--model", "tiny@.."]),
                "..'")  # refused by name (unknown model before, unsafe version now): no path is built


@fault("leftovers", "cleaned")
def refused_archive_not_kept(env: Env) -> None:
    import voxmmsd.models.catalog as catalog

    other = build_tiny_package(env.tmp / "src" / "tiny", model_id="tiny", version="0.2", export_onnx=False)
    archive = Path(shutil.make_archive(str(env.tmp / "a"), "zip", root_dir=other.parent))
    _catalog(env, "0.1")

    def fake_download(url, dest, sha256, size=None, progress=None, timeout=60.0):
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(archive, dest)  # the verified bytes of an archive that holds the wrong package
        return Path(dest)

    env.monkeypatch.setattr(catalog, "download", fake_download)
    env.refused(main(["models", "install", "tiny"]), "holds tiny 0.2", "refused")
    assert not [p for p in (env.home / "downloads").iterdir()]


@fault("models", "refused")
def tampered_weights(env: Env) -> None:
    bad = env.tmp / "bad"
    shutil.copytree(env.pkg, bad)
    with open(bad / "weights.safetensors", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    env.refused(main(["models", "verify", str(bad)]), "tampered")


@fault("models", "refused")
def malicious_pickle_checkpoint(env: Env) -> None:
    import torch
    from voxmmsd.finetune.init import initialise
    from voxmmsd.nets.unet import UNetConfig, VoxUNet

    marker = env.tmp / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"model_state_dict": {"x": torch.zeros(1)}, "obj": Evil()}, str(env.tmp / "evil.pt"))
    with pytest.raises(ModelError, match="safely"):
        initialise(VoxUNet(UNetConfig(channels=(4, 8, 16, 32, 64))), env.tmp / "evil.pt")
    assert not marker.exists()


@fault("models", "refused")
def archive_member_outside_the_folder(env: Env) -> None:
    from voxmmsd.models.catalog import _safe_extract

    z = env.tmp / "slip.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("../../escaped.txt", "x")
    with pytest.raises(ModelError, match="unsafe path"):
        _safe_extract(z, env.tmp / "into")
    assert not (env.tmp.parent / "escaped.txt").exists()


@fault("leftovers", "cleaned")
def partial_download_with_a_bad_checksum(env: Env) -> None:
    from voxmmsd.models.download import download

    src = env.tmp / "blob"
    src.write_bytes(b"x" * 5000)
    with pytest.raises(ModelError, match="SHA-256"):
        download(src.as_uri(), env.tmp / "dl" / "blob", "1" * 64)
    assert list((env.tmp / "dl").iterdir()) == []


@fault("outputs", "kept")
def failed_atomic_write_leaves_no_partial_file(env: Env) -> None:
    from voxmmsd.io.atomic import atomic_path

    target = env.tmp / "x.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old" and [p.name for p in env.tmp.iterdir()] == ["x.json"]


@fault("outputs", "kept")
def disk_full_during_an_atomic_write(env: Env) -> None:
    from voxmmsd.io.atomic import write_text

    target = env.tmp / "summary.csv"
    target.write_text("old")
    env.monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    with pytest.raises(VoxMMSDError, match="disk is full.*summary.csv.*previous file is kept"):
        write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in env.tmp.iterdir()] == ["summary.csv"]


@fault("input", "refused")
def not_an_image(env: Env) -> None:
    env.seq("t2w").write_bytes(b"\x00" * 100)
    env.refused(env.segment(), "c-t2w.nii.gz")


@fault("input", "refused")
def two_dimensional_image(env: Env) -> None:
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((20, 20), np.float32)), str(env.seq("t1n")))
    env.refused(env.segment(), "2-D", "3-D")


@fault("input", "refused")
def grids_that_do_not_overlap(env: Env) -> None:
    img = env.image("t2w")
    img.SetOrigin((500.0, 500.0, 500.0))
    sitk.WriteImage(img, str(env.seq("t2w")), True)
    env.refused(env.segment("--register", "off") if _has_register_modes() else env.segment(), "covers only")


def _has_register_modes() -> bool:
    from voxmmsd.cli.main import build_parser

    try:
        build_parser().parse_args(["segment", "x", "--out", "y", "--register", "off"])
        return True
    except SystemExit:
        return False


@fault("input", "refused")
def missing_sequence(env: Env) -> None:
    env.seq("t2f").unlink()
    env.refused(env.segment(), "T2-FLAIR")


# -- 3. batch: never abort on one case ---------------------------------------------------------------

@pytest.fixture(scope="module")
def batch_run(pkg: Path, tmp_path_factory: pytest.TempPathFactory) -> Dict[str, object]:
    """One batch over a cohort with every batch fault planted; the faults below check their rows."""
    root = tmp_path_factory.mktemp("batch")
    data = root / "data"
    synthetic.write_dataset(data, n=2, geometry=GEOM)  # case000, case001: good
    shutil.copyfile(data / "case001" / "case001-t2f.nii.gz", data / "case001" / "case001_flair.nii.gz")
    (data / "empty_case").mkdir()
    (data / "__MACOSX" / "case000").mkdir(parents=True)  # unzip metadata: not a case, not listed
    deep = data / "site" / "scanner" / "deepcase"
    synthetic.write_case(deep, "deepcase", seed=4, geometry=GEOM, with_label=False)
    synthetic.write_case(data / "siteA" / "case000", "case000", seed=5, geometry=GEOM, with_label=False)
    synthetic.write_case(data / "broken", "broken", seed=6, geometry=GEOM, with_label=False)
    (data / "broken" / "broken-t1c.nii.gz").write_bytes(b"garbage")
    out = root / "out"
    rc = main(["segment", "--batch", str(data), "--out", str(out), "--model", str(pkg), "--backend", "onnx",
               "--progress", "none", "--no-qc"])
    rows: Dict[str, List[Dict[str, str]]] = {}
    import csv

    if (out / "summary.csv").is_file():  # (a batch that aborted has none: each batch fault then fails alone)
        with open(out / "summary.csv", newline="") as f:
            for r in csv.DictReader(f):
                rows.setdefault(r["case_id"], []).append(r)
    return {"rc": rc, "rows": rows, "out": out}


def _batch(env: Env) -> Dict[str, object]:
    return env.batch  # type: ignore[attr-defined]


@fault("batch", "listed")
def batch_case_with_two_flairs(env: Env) -> None:
    b = _batch(env)
    assert b["rc"] == 1
    row = b["rows"]["case001"][0]
    assert row["status"] == "failed" and "More than one T2-FLAIR" in row["error"]
    assert b["rows"]["case000"][0]["status"] == "done"  # the others ran


@fault("batch", "listed")
def batch_empty_case_folder(env: Env) -> None:
    row = _batch(env)["rows"]["empty_case"][0]
    assert row["status"] == "failed" and "holds no image" in row["error"]
    assert len(_batch(env)["rows"]["case000"]) == 2  # (__MACOSX/case000 is not a case folder)


@fault("batch", "listed")
def batch_case_folder_too_deep(env: Env) -> None:
    row = _batch(env)["rows"]["scanner"][0]
    assert row["status"] == "failed" and "two levels deep" in row["error"]


@fault("batch", "listed")
def batch_two_cases_with_one_id(env: Env) -> None:
    rows = _batch(env)["rows"]["case000"]
    assert [r["status"] for r in rows] == ["done", "failed"] and "Rename one" in rows[1]["error"]


@fault("batch", "listed")
def batch_unreadable_case(env: Env) -> None:
    row = _batch(env)["rows"]["broken"][0]
    assert row["status"] == "failed" and "broken-t1c.nii.gz" in row["error"]
    assert not (Path(str(_batch(env)["out"])) / "broken").exists()  # no empty folder left


# -- the table ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny")


@pytest.mark.parametrize("item", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(item: Fault, pkg: Path, batch_run: Dict[str, object], tmp_path: Path,
               caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    env = Env(tmp_path, pkg, caplog, monkeypatch)
    env.batch = batch_run  # type: ignore[attr-defined]
    try:
        item.run(env)
    except VoxMMSDError as exc:  # a fault must be handled by the command, not escape from it
        raise AssertionError(f"{item.name}: {type(exc).__name__} escaped: {exc}") from None


def test_docs_list_every_fault() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    missing = [f.name for f in FAULTS if f"`{f.name}`" not in doc]
    assert not missing, f"docs/reliability.md does not list: {missing}"
    assert f"{len(FAULTS)} faults" in doc
    assert len(FAULTS) >= 45
