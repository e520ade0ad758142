"""Every fault a new user may cause, tried as a table: bad input, replaced results, models, batch, leftovers.

Each entry of :data:`FAULTS` is one fault, with its area and the outcome it must have
(``refused``: a clear message naming the file and the fix, exit status 1, no traceback, nothing
written; ``warned``: a result plus a warning (only where one is due); ``kept``: what the user had stays
as it was; ``listed``: the batch goes on and lists the case with the reason; ``cleaned``: leftovers
removed; ``same``: the same answer however the input is stored or how often it is run; ``ignored``: what
must not be used is left out (links, pipes, an archive's modes); ``escaped``: text that would run as a
spreadsheet formula is escaped). The outcome is asserted, not only declared: each fault checks it
through the :class:`Env` helper of that name, and :func:`test_fault` fails a fault whose declared
outcome was not checked. ``docs/reliability.md`` lists the same faults with their outcomes;
:func:`test_docs_list_every_fault` keeps the two in step. All cases are synthetic and small (a tiny
4-channel U-Net package); the few faults that need seconds of real work are marked slow.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Sequence, Set

import numpy as np
import pytest
import SimpleITK as sitk
from support.packages import build_tiny_package
from support.waiting import wait_until
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.errors import InputError, ModelError, VoxMMSDError

ROOT = Path(__file__).resolve().parents[1]
GEOM = synthetic.default_geometry((32, 40, 28))


OUTCOMES = ("refused", "warned", "kept", "listed", "cleaned", "same", "ignored", "escaped")


@dataclass(frozen=True)
class Fault:
    name: str
    area: str
    outcome: str  # one of OUTCOMES
    run: Callable[["Env"], None]
    slow: bool = False


FAULTS: List[Fault] = []


def fault(area: str, outcome: str, slow: bool = False) -> Callable[[Callable[["Env"], None]], Callable[["Env"], None]]:
    assert outcome in OUTCOMES, outcome

    def register(fn: Callable[["Env"], None]) -> Callable[["Env"], None]:
        FAULTS.append(Fault(fn.__name__, area, outcome, fn, slow))
        return fn
    return register


class Env:
    """One fault's sandbox: a fresh synthetic case, the tiny package, a cache home, the captured log."""

    def __init__(self, tmp: Path, pkg: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
        self.tmp, self.pkg, self.caplog, self.monkeypatch = tmp, pkg, caplog, monkeypatch
        self.home = tmp / "home"
        monkeypatch.setenv("VOXMMSD_HOME", str(self.home))
        self._case = None
        self.checked: Set[str] = set()  # the outcomes this fault asserted

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

    # -- the outcomes: each asserts one and records that it did ---------------------------------------
    def refused(self, rc: int, *words: str) -> None:
        """A command refused: exit status 1, every word in its message, no traceback."""
        assert rc == 1, f"expected a refusal, got rc {rc}"
        text = self.caplog.text
        for w in words:
            assert w in text, f"{w!r} not in the message: {text[-800:]}"
        assert "Traceback" not in text
        self.checked.add("refused")

    @contextlib.contextmanager
    def raises(self, error: type, match: str) -> Iterator[None]:
        """An engine function refused with ``error`` (its message matching ``match``)."""
        with pytest.raises(error, match=match):
            yield
        self.checked.add("refused")

    def warned(self, text: str, *words: str) -> None:
        for w in words:
            assert w in text, f"{w!r} not in the warning: {text[-800:]}"
        self.checked.add("warned")

    def kept(self, before: object, after: object) -> None:
        """What the user had (a snapshot) is unchanged."""
        assert before == after, "what the user had was changed"
        self.checked.add("kept")

    def cleaned(self, *paths: Path) -> None:
        for p in paths:
            assert not os.path.lexists(p), f"left behind: {p}"
        self.checked.add("cleaned")

    def listed(self, row: Dict[str, str], *words: str, status: str = "failed") -> None:
        assert row["status"] == status, row
        for w in words:
            assert w in row["error"], f"{w!r} not in {row['error']!r}"
        self.checked.add("listed")

    def same(self, a: np.ndarray, b: np.ndarray) -> None:
        assert a.shape == b.shape and a.any(), (a.shape, b.shape)
        differ = int(np.count_nonzero(a != b))
        assert differ == 0, f"{differ} voxels differ"
        self.checked.add("same")

    def ignored(self, condition: bool, what: str) -> None:
        assert condition, what
        self.checked.add("ignored")

    def escaped(self, cells: Sequence[str], raw: Sequence[str]) -> None:
        for c, r in zip(cells, raw):
            assert c == "'" + r, (c, r)
        self.checked.add("escaped")

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
    with env.raises(InputError, r"case001-t2f\.nii\.gz.*(truncated|end marker)"):
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
    env.warned(json.dumps(report["warnings"]), "c-t1n.nii.gz", "background was -500", "shifted")


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
    env.warned(json.dumps(report["warnings"]), "mL, outside the usual", "voxel spacing")


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
    assert not scanner.stripped
    env.warned(masked.reason + " " + scanner.reason, "skull", "background")


@fault("input", "refused")
def empty_case_folder(env: Env) -> None:
    (env.tmp / "empty").mkdir()
    rc = main(["segment", str(env.tmp / "empty"), "--out", str(env.tmp / "out"), "--model", str(_tolerant(env)),
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
    env.kept(before, _sha_of_tree(env.tmp / "out"))


@fault("outputs", "cleaned")
def overwrite_leaves_no_stale_file(env: Env) -> None:
    assert env.segment() == 0 and (env.tmp / "out" / "qc.png").is_file()
    assert env.segment("--no-qc", "--overwrite") == 0
    names = sorted(p.name for p in (env.tmp / "out").iterdir())
    assert names == ["report.json", "segmentation.nii.gz", "segmentation.seg.nrrd"]
    env.cleaned(env.tmp / "out" / "qc.png")


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
    assert (env.tmp / "out" / "report.json").is_file()
    env.cleaned(stale)


@fault("leftovers", "cleaned")
def unfinished_result_replaced(env: Env) -> None:
    import voxmmsd.infer.outputs as outputs

    out = env.tmp / "out"
    assert env.segment() == 0
    moved: List[str] = []
    real_replace = os.replace

    def killed_after_one(src, dst):  # SIGTERM (real, to this process) while the new files are moved in
        real_replace(src, dst)
        if not Path(src).parent.name.startswith(".staging-") or Path(dst).parent.name.startswith(".staging-"):
            return  # (os.replace is also every atomic write's: the writing marker, each file inside the staging)
        moved.append(str(dst))
        if len(moved) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    env.monkeypatch.setattr(outputs.os, "replace", killed_after_one)
    assert env.segment("--overwrite") == 128 + signal.SIGTERM
    env.monkeypatch.setattr(outputs.os, "replace", real_replace)
    assert not (out / "report.json").exists() and (out / "qc.png").exists()  # half old, half new
    assert env.segment("--no-qc") == 0  # that unfinished result of ours: replaced, with a warning
    assert "unfinished result" in env.caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "segmentation.nii.gz", "segmentation.seg.nrrd"]
    env.cleaned(out / "qc.png", out / ".voxmmsd-writing.json")


@fault("leftovers", "cleaned")
def no_empty_output_folder_after_failure(env: Env) -> None:
    env.seq("t1c").write_bytes(b"not an image")
    env.refused(env.segment(), "c-t1c.nii.gz")
    env.cleaned(env.tmp / "out")


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
    env.kept(before, _sha_of_tree(env.tmp / "out"))  # the previous result is intact


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
    env.kept(before, _sha_of_tree(installed))
    assert main(["models", "verify", "tiny@0.1"]) == 0
    assert main(["models", "import", str(other), "--replace"]) == 0
    assert _sha_of_tree(installed) == _sha_of_tree(other)


@fault("leftovers", "cleaned")
def stale_import_copy_removed(env: Env) -> None:
    stale = env.home / "models" / "tiny" / ".0.1.crashed.tmp"
    stale.mkdir(parents=True)
    (stale / "weights.safetensors").write_bytes(b"half")
    os.utime(stale, (1_000_000_000, 1_000_000_000))  # left by an import interrupted long ago
    assert main(["models", "import", str(env.pkg)]) == 0
    assert (env.home / "models" / "tiny" / "0.1" / "model.json").is_file()
    env.cleaned(stale)


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
    from voxmmsd.models.package import load_package

    with env.raises(ModelError, "classes"):
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
    env.cleaned(*(env.home / "downloads").iterdir())
    env.cleaned(env.home / "downloads" / "tiny-0.1.zip")


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
    with env.raises(ModelError, "safely"):
        initialise(VoxUNet(UNetConfig(channels=(4, 8, 16, 32, 64))), env.tmp / "evil.pt")
    assert not marker.exists()


@fault("models", "refused")
def archive_member_outside_the_folder(env: Env) -> None:
    from voxmmsd.models.catalog import _safe_extract

    z = env.tmp / "slip.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("../../escaped.txt", "x")
    with env.raises(ModelError, "unsafe path"):
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
    env.cleaned(env.tmp / "dl" / "blob")


@fault("outputs", "kept")
def failed_atomic_write_leaves_no_partial_file(env: Env) -> None:
    from voxmmsd.io.atomic import atomic_path

    target = env.tmp / "x.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    env.kept(("old", ["x.json"]), (target.read_text(), [p.name for p in env.tmp.iterdir()]))


@fault("outputs", "kept")
def disk_full_during_an_atomic_write(env: Env) -> None:
    from voxmmsd.io.atomic import write_text

    target = env.tmp / "summary.csv"
    target.write_text("old")
    env.monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    with pytest.raises(VoxMMSDError, match="disk is full.*summary.csv.*previous file is kept"):
        write_text(target, "new")
    env.kept(("old", ["summary.csv"]), (target.read_text(), [p.name for p in env.tmp.iterdir()]))


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


# -- 4. orientation and grids: the same image gives the same answer ----------------------------------

def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _stored_as(env: Env, code: str) -> Path:
    """The case's four sequences stored with axes ``code`` (SimpleITK's DICOMOrient: axes permuted and flipped,
    no voxel changed): the same physical image, another file layout."""
    folder = env.tmp / f"c-{code}"
    folder.mkdir()
    for key in synthetic.SEQUENCES:
        sitk.WriteImage(sitk.DICOMOrient(env.image(key), code), str(folder / f"c-{key}.nii.gz"), True)
    return folder


def _same_as_stored(env: Env, code: str) -> None:
    assert env.segment() == 0
    turned = _stored_as(env, code)
    assert env.segment(case=turned, out=env.tmp / f"out-{code}") == 0
    seg = sitk.ReadImage(str(env.tmp / f"out-{code}" / "segmentation.nii.gz"))
    ref = sitk.ReadImage(str(turned / "c-t1c.nii.gz"))
    assert seg.GetDirection() == ref.GetDirection() and seg.GetOrigin() == ref.GetOrigin()  # on the stored grid
    original = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(env.image("t1c").GetDirection())
    back = sitk.GetArrayFromImage(sitk.DICOMOrient(seg, original))  # SimpleITK turns it back, not the tool
    env.same(_read(env.tmp / "out" / "segmentation.nii.gz"), back)


@fault("orientation", "same")
def same_image_stored_ras(env: Env) -> None:
    _same_as_stored(env, "RAS")


@fault("orientation", "same")
def same_image_axes_permuted(env: Env) -> None:
    _same_as_stored(env, "ASL")


@fault("orientation", "same")
def oblique_header_identical_voxels(env: Env) -> None:
    assert env.segment() == 0
    folder = env.tmp / "oblique"
    folder.mkdir()
    tilt = synthetic.rotation(0, 10.0) @ synthetic.rotation(2, 4.0)
    for key in synthetic.SEQUENCES:  # the same voxels, one oblique header on all four
        img = env.image(key)
        img.SetDirection(tuple(float(v) for v in tilt.ravel()))
        sitk.WriteImage(img, str(folder / f"c-{key}.nii.gz"), True)
    assert env.segment(case=folder, out=env.tmp / "out-oblique") == 0
    report = json.loads((env.tmp / "out-oblique" / "report.json").read_text())
    assert report["inputs"]["resampled"] == {}  # on the reference grid: nothing resampled
    env.same(_read(env.tmp / "out" / "segmentation.nii.gz"), _read(env.tmp / "out-oblique" / "segmentation.nii.gz"))


@fault("orientation", "same")
def one_sequence_stored_ras(env: Env) -> None:
    from voxmmsd.io.discovery import find_case
    from voxmmsd.io.reader import load_case

    before = load_case(find_case(env.case), with_label=False)
    t2w = env.seq("t2w")
    sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(str(t2w)), "RAS"), str(t2w), True)  # the same voxels, RAS
    after = load_case(find_case(env.case), with_label=False)
    assert after.resampled == {}  # turned onto the reference grid, not interpolated
    env.same(before.image, after.image)


@fault("training", "same")
def training_label_stored_ras(env: Env) -> None:
    from voxmmsd.io.discovery import find_case
    from voxmmsd.io.reader import load_case

    case = _labelled(env, n=1) / "case000"
    before = load_case(find_case(case))
    p = case / "case000-seg.nii.gz"
    sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(str(p)), "RAS"), str(p), True)  # drawn on the image, saved RAS
    after = load_case(find_case(case))
    assert after.resampled == {} and before.label is not None and after.label is not None
    env.same(before.label, after.label)


# -- 5. input files: the one file-open check ---------------------------------------------------------

@fault("input", "refused")
def unreadable_file(env: Env) -> None:
    p = env.seq("t2w")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        p.chmod(0)
        try:
            rc = env.segment()
        finally:
            p.chmod(0o644)
    else:  # root may read every file: a test double for the permission the kernel would refuse (only os.open
        import voxmmsd.io.access as access  # of that one file; the check and everything after it are real)

        real_open = os.open

        def denied(path, flags, *a, **k):
            if str(path) == str(p):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *a, **k)

        env.monkeypatch.setattr(access.os, "open", denied)
        rc = env.segment()
    env.refused(rc, "c-t2w.nii.gz", "permission denied", "chmod")
    assert not (env.tmp / "out").exists()


@fault("input", "refused")
def dangling_symlink_for_flair(env: Env) -> None:
    p = env.seq("t2f")
    p.unlink()
    p.symlink_to(env.tmp / "gone" / "flair.nii.gz")
    rc = main(["segment", str(env.case), "--out", str(env.tmp / "out"), "--model", str(_tolerant(env)),
               "--backend", "onnx", "--progress", "none"])  # a model that would segment without FLAIR
    env.refused(rc, "c-t2f.nii.gz", "broken link")
    assert not (env.tmp / "out").exists()


def _write_nifti2(path: Path, array: np.ndarray, spacing: Sequence[float]) -> None:
    """A NIfTI-2 file (540-byte header, int64 dimensions), written byte by byte."""
    import struct

    head = bytearray(544)
    struct.pack_into("<i8s", head, 0, 540, b"n+2\0\r\n\x1a\n")
    struct.pack_into("<hh", head, 12, 16, 32)  # float32
    nz, ny, nx = array.shape
    struct.pack_into("<8q", head, 16, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<8d", head, 104, 1.0, *spacing, 0.0, 0.0, 0.0, 0.0)
    struct.pack_into("<qdd", head, 168, 544, 1.0, 0.0)
    struct.pack_into("<ii", head, 344, 0, 1)
    struct.pack_into("<4d4d4d", head, 400, spacing[0], 0, 0, 0, 0, spacing[1], 0, 0, 0, 0, spacing[2], 0)
    path.write_bytes(gzip.compress(bytes(head) + np.ascontiguousarray(array, "<f4").tobytes()))


@fault("input", "refused")
def nifti2_file(env: Env) -> None:
    img = env.image("t1n")
    _write_nifti2(env.seq("t1n"), sitk.GetArrayFromImage(img).astype(np.float32), img.GetSpacing())
    env.refused(env.segment(), "c-t1n.nii.gz", "NIfTI-2", "NIfTI-1")


@fault("outputs", "refused")
def out_is_the_case_folder(env: Env) -> None:
    before = _sha_of_tree(env.case)
    env.refused(env.segment(out=env.case), "is the case folder itself", "Choose another folder")
    assert _sha_of_tree(env.case) == before and not (env.case / ".voxmmsd.lock").exists()


@fault("outputs", "kept")
def users_own_segmentation_kept(env: Env) -> None:
    out = env.tmp / "out"
    out.mkdir()
    mine = b"the user's own segmentation, no report.json beside it"
    (out / "segmentation.nii.gz").write_bytes(mine)
    env.refused(env.segment(), "segmentation.nii.gz", "did not write", "--overwrite")
    env.kept(mine, (out / "segmentation.nii.gz").read_bytes())
    assert env.segment("--overwrite") == 0 and (out / "report.json").is_file()  # replaced only when asked


@fault("outputs", "ignored")
def result_in_the_case_folder_not_read_as_input(env: Env) -> None:
    from voxmmsd.io.discovery import find_case

    assert env.segment() == 0
    for p in (env.tmp / "out").iterdir():  # a result beside the images (e.g. copied there)
        shutil.copyfile(p, env.case / p.name)
    case = find_case(env.case)
    env.ignored(case.label is None and sorted(p.name for p in case.sequences.values()) == [
        "c-t1c.nii.gz", "c-t1n.nii.gz", "c-t2f.nii.gz", "c-t2w.nii.gz"], "the tool's own files were taken as input")
    assert env.segment(out=env.tmp / "again") == 0


# -- 6. model packages: one range check at load, verify runs what segment runs ----------------------

def _copy_pkg(env: Env, name: str = "bad") -> Path:
    bad = env.tmp / name
    shutil.copytree(env.pkg, bad)
    return bad


def _rehash(folder: Path) -> None:
    meta = json.loads((folder / "model.json").read_text())
    for name in meta["files"]:
        meta["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))


def _edit_meta(env: Env, edit: Callable[[Dict[str, object]], None]) -> Path:
    bad = _copy_pkg(env)
    meta = json.loads((bad / "model.json").read_text())
    edit(meta)
    (bad / "model.json").write_text(json.dumps(meta))
    return bad


def _segment_with(env: Env, package: Path, *extra: str) -> int:
    return main(["segment", str(env.case), "--out", str(env.tmp / "out"), "--model", str(package), "--backend",
                 "onnx", "--progress", "none", *extra])


@fault("models", "refused")
def weights_of_another_version(env: Env) -> None:
    other = build_tiny_package(env.tmp / "v02" / "tiny", version="0.2", seed=5, export_onnx=False)
    bad = _copy_pkg(env)
    shutil.copyfile(other / "weights.safetensors", bad / "weights.safetensors")
    _rehash(bad)  # the checksums fit: only the weights' own record tells
    env.refused(main(["models", "verify", str(bad)]), "the weights say they are tiny 0.2", "model.json says tiny 0.1")
    env.refused(_segment_with(env, bad), "tiny 0.2")


@fault("models", "refused")
def onnx_with_three_outputs(env: Env) -> None:
    import torch
    from voxmmsd.models.package import load_package
    from voxmmsd.nets.unet import VoxUNet
    from voxmmsd.nets.weights import load_weights

    class Three(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            y = self.net(x)
            return y[:, :3], y, y[:, :1]

    net = VoxUNet(load_package(env.pkg).unet_config())
    net.load_state_dict(load_weights(env.pkg / "weights.safetensors")[0])
    bad = _copy_pkg(env)
    dyn = {0: "n", 2: "d", 3: "h", 4: "w"}
    torch.onnx.export(Three(net.eval()), (torch.zeros(1, 4, 32, 32, 32),), str(bad / "model.onnx"), dynamo=False,
                      opset_version=17, input_names=["image"], output_names=["a", "b", "c"],
                      dynamic_axes={"image": dyn, "a": dyn, "b": dyn, "c": dyn})
    _rehash(bad)
    env.refused(main(["models", "verify", str(bad)]), "3 outputs", "one output of (N, 4, D, H, W)")
    env.refused(_segment_with(env, bad), "3 outputs")
    assert not (env.tmp / "out").exists()


@fault("models", "ignored")
def import_symlink_to_a_system_folder(env: Env) -> None:
    pkg = _copy_pkg(env, "tiny-with-link")
    (pkg / "docs").symlink_to(Path(sys.prefix))  # a large folder elsewhere on the system
    assert main(["models", "import", str(pkg)]) == 0
    installed = env.home / "models" / "tiny" / "0.1"
    env.ignored(sorted(p.name for p in installed.iterdir()) == ["model.json", "model.onnx", "weights.safetensors"],
                "only the package's own files are copied")


@fault("models", "ignored")
def import_symlink_loop_and_named_pipe(env: Env) -> None:
    pkg = _copy_pkg(env, "tiny-with-pipe")
    (pkg / "loop").symlink_to(pkg / "loop")
    if hasattr(os, "mkfifo"):
        os.mkfifo(pkg / "pipe")
    assert main(["models", "verify", str(pkg)]) == 0
    assert main(["models", "import", str(pkg)]) == 0
    installed = env.home / "models" / "tiny" / "0.1"
    env.ignored(sorted(p.name for p in installed.iterdir()) == ["model.json", "model.onnx", "weights.safetensors"],
                "a loop or a pipe was copied")
    assert "Traceback" not in env.caplog.text


@fault("models", "refused")
def import_weights_file_is_a_symlink(env: Env) -> None:
    pkg = _copy_pkg(env, "tiny-linked")
    real = env.tmp / "elsewhere.safetensors"
    shutil.move(str(pkg / "weights.safetensors"), real)
    (pkg / "weights.safetensors").symlink_to(real)
    env.refused(main(["models", "import", str(pkg)]), "weights.safetensors", "symbolic link", "plain files")
    assert not (env.home / "models" / "tiny" / "0.1").exists()


@fault("models", "refused")
def absurd_working_spacing(env: Env) -> None:
    bad = _edit_meta(env, lambda m: m["preprocessing"].update(spacing=[0.05, 0.05, 0.05]))  # type: ignore
    env.refused(main(["models", "verify", str(bad)]), "preprocessing.spacing", "0.5-4 mm", "GiB")
    env.refused(_segment_with(env, bad), "preprocessing.spacing")
    assert not (env.tmp / "out").exists()


@fault("models", "refused")
def absurd_intensity_percentile(env: Env) -> None:
    bad = _edit_meta(env, lambda m: m["preprocessing"].update(percentile=1e-9))  # type: ignore
    env.refused(_segment_with(env, bad), "preprocessing.percentile", "90-100", "saturates")


@fault("models", "refused")
def windows_that_never_finish(env: Env) -> None:
    bad = _edit_meta(env, lambda m: m["inference"].update(patch_size=[16, 16, 16], overlap=0.99))  # type: ignore
    env.refused(main(["models", "verify", str(bad)]), "inference.overlap = 0.99", "0-0.9")
    env.refused(env.segment("--patch-size", "16", "16", "16", "--overlap", "0.5"), "--patch-size", "windows",
                "larger windows")


@fault("models", "refused")
def verify_runs_a_forward_pass(env: Env) -> None:
    from support.packages import tiny_state
    from voxmmsd.models.package import load_package, save_package
    from voxmmsd.preprocessing import PreprocessConfig

    state, cfg = tiny_state(0)
    state["decoder.out_conv.bias"][1] = float("nan")  # loads, checksums fit, shapes fit: only running it tells
    bad = save_package(env.tmp / "nan" / "tiny", state, cfg, PreprocessConfig(), model_id="tiny", version="0.1")
    load_package(bad)
    env.refused(main(["models", "verify", str(bad)]), "NaN or infinite score", "broken")


@fault("models", "warned")
def region_model_low_confidence_not_on_every_case(env: Env) -> None:
    from voxmmsd.infer import uncertainty
    from voxmmsd.models.catalog import resolve_model

    typical = resolve_model("voxmmsd-brats-default@2.0.0").inference.get("typical_low_confidence")
    assert typical is not None and typical > 0.9  # measured: unsure on every case it segments
    usual = {"tumour_voxels": 10050, "low_confidence_fraction": 1.0, "mean_confidence": 0.04}
    assert not [w for w in uncertainty.warnings_for(usual, typical) if w["kind"] == "uncertainty"]
    assert resolve_model("voxmmsd-brats-default@1.0.0").inference.get("typical_low_confidence") is None
    env.warned(json.dumps(uncertainty.warnings_for(usual, None)), "Low confidence: 100%")  # a confident model warns


@fault("models", "warned", slow=True)
def region_model_sample_case_no_false_alarm(env: Env) -> None:
    sample = ROOT / "VoxMMSDSegmentation" / "Resources" / "Sample" / "BraTS18-sample"
    assert main(["segment", str(sample), "--out", str(env.tmp / "out"), "--model", "voxmmsd-brats-default@2.0.0",
                 "--backend", "onnx", "--progress", "none", "--no-qc"]) == 0
    report = json.loads((env.tmp / "out" / "report.json").read_text())
    assert report["uncertainty"]["low_confidence_fraction"] > 0.9  # the model is as unsure as it always is
    kinds = [w["kind"] for w in report["warnings"]]
    assert "uncertainty" not in kinds
    from voxmmsd.infer import uncertainty

    # the same numbers from a model without that record (a confident one) do warn: the rule, not a lost warning
    env.warned(json.dumps(uncertainty.warnings_for(report["uncertainty"], None)), "Low confidence")


# -- 7. training input ----------------------------------------------------------------------------------

def _labelled(env: Env, n: int = 2, **kwargs: object) -> Path:
    return synthetic.write_dataset(env.tmp / "train", n=n, geometry=GEOM, **kwargs)


def _cache(env: Env, data: Path, labels: str = "auto") -> None:
    from voxmmsd.data.cache import build_cache
    from voxmmsd.io.discovery import find_dataset
    from voxmmsd.preprocessing import PreprocessConfig

    build_cache(find_dataset(data), env.tmp / "cache", PreprocessConfig(), labels, show_progress=False)


@fault("training", "refused")
def label_shifted_12mm(env: Env) -> None:
    data = _labelled(env)
    p = data / "case001" / "case001-seg.nii.gz"
    img = sitk.ReadImage(str(p))
    img.SetOrigin(tuple(o + d for o, d in zip(img.GetOrigin(), (12.0, 0.0, 0.0))))
    sitk.WriteImage(img, str(p), True)
    with env.raises(InputError, r"case001-seg\.nii\.gz is not on the grid of any of the case's images.*12\.0 mm"):
        _cache(env, data)


@fault("training", "refused")
def all_labels_empty(env: Env) -> None:
    from voxmmsd.errors import LabelError
    from voxmmsd.finetune.config import FinetuneConfig
    from voxmmsd.finetune.prepare import prepare_cases
    from voxmmsd.jobs.distributed import DistInfo

    data = _labelled(env)
    for p in data.rglob("*-seg.nii.gz"):
        img = sitk.ReadImage(str(p))
        env.write("t1c", np.zeros(sitk.GetArrayFromImage(img).shape, np.uint8), img, p)
    with env.raises(LabelError, "Every label map of the 2 case"):
        prepare_cases(data, FinetuneConfig(), env.tmp / "run", DistInfo())


@fault("training", "refused")
def cohort_of_its_own_predictions(env: Env) -> None:
    from voxmmsd.io.discovery import find_dataset

    data = synthetic.write_dataset(env.tmp / "cohort", n=1, geometry=GEOM, with_label=False)
    assert env.segment(case=data / "case000", out=env.tmp / "pred") == 0
    for p in (env.tmp / "pred").iterdir():  # the tool's result beside the images, no reference label
        shutil.copyfile(p, data / "case000" / p.name)
    with env.raises(InputError, "have no label map"):
        find_dataset(data, require_labels=True)


@fault("training", "refused")
def resume_with_another_network(env: Env) -> None:
    from voxmmsd.finetune.config import load_config
    from voxmmsd.jobs.checkpoint import save_checkpoint
    from voxmmsd.jobs.run_folder import RunFolder

    run = RunFolder(env.tmp / "run")
    cfg = load_config(None, ["network.channels=[4,8,16,32,64]"], {"data": {"root": str(_labelled(env))}})
    save_checkpoint({"config": cfg.to_dict(), "iteration": 1}, run.last_checkpoint)  # what a stopped run leaves
    rc = main(["finetune", "--resume", str(run.root), "--set", "network.channels=[8,16,32,64,128]",
               "--allow-changed-settings"])
    env.refused(rc, "cannot change the network", "network.channels", "start a new run")


@fault("training", "kept")
def new_run_over_an_earlier_model(env: Env) -> None:
    run = env.tmp / "run"
    shutil.copytree(env.pkg, run / "model")  # an earlier run's package; its checkpoints were deleted
    before = _sha_of_tree(run / "model")
    rc = main(["finetune", "--data", str(_labelled(env)), "--out", str(run), "--max-iters", "1"])
    env.refused(rc, "from an earlier run", "another --out")
    env.kept(before, _sha_of_tree(run / "model"))


@fault("training", "refused")
def legacy_labels_3_and_4_mixed(env: Env) -> None:
    from voxmmsd.errors import LabelError

    data = _labelled(env, n=1)
    p = data / "case000" / "case000-seg.nii.gz"
    img = sitk.ReadImage(str(p))
    lab = sitk.GetArrayFromImage(img)
    lab[lab == 1] = 4  # BraTS 2015 style: 1..4 with 4 the enhancing tumour, next to a 3
    env.write("t1c", lab, img, p)
    with env.raises(LabelError, r"3 and 4 together.*--labels brats2023.*relabel 3 as 1 and give --labels legacy"):
        _cache(env, data)


# -- 8. signals: real signals, the one handler --------------------------------------------------------

def _cli(*args: str) -> List[str]:
    return [sys.executable, "-m", "voxmmsd", *args]


def _no_leftovers(env: Env, folder: Path) -> None:
    env.cleaned(*folder.rglob(".voxmmsd.lock"), *folder.rglob(".staging-*"), *folder.rglob(".*.tmp*"))


@fault("signals", "cleaned")
def sigterm_while_reading(env: Env) -> None:
    out = env.tmp / "out"
    proc = subprocess.Popen(_cli("segment", str(env.case), "--out", str(out), "--model", str(env.pkg), "--backend",
                                 "onnx", "--progress", "none"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert wait_until((out / ".voxmmsd.lock").exists, timeout=300, interval=0.005, proc=proc)  # the output folder
    # is claimed: the images are read next
    proc.send_signal(signal.SIGTERM)
    text = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert "Traceback" not in text and "SIGTERM" in text
    env.cleaned(out)  # the folder it created, lock included


@fault("signals", "cleaned")
def sigterm_while_predicting(env: Env) -> None:
    from voxmmsd.infer import window

    real = window.whole

    def terminated(*a, **k):  # a real SIGTERM to this process while the network runs
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    env.monkeypatch.setattr(window, "whole", terminated)
    assert env.segment() == 128 + signal.SIGTERM
    env.cleaned(env.tmp / "out")


@fault("signals", "cleaned")
def sigterm_while_writing(env: Env) -> None:
    import voxmmsd.infer.outputs as outputs

    assert env.segment() == 0
    before = _sha_of_tree(env.tmp / "out")
    real = outputs.write_seg_nrrd

    def terminated(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    env.monkeypatch.setattr(outputs, "write_seg_nrrd", terminated)
    assert env.segment("--overwrite") == 128 + signal.SIGTERM
    assert _sha_of_tree(env.tmp / "out") == before  # the previous result is untouched
    _no_leftovers(env, env.tmp / "out")


@fault("signals", "listed")
def sigterm_during_a_batch(env: Env) -> None:
    import csv

    data = synthetic.write_dataset(env.tmp / "cohort", n=5, geometry=GEOM, with_label=False)
    out = env.tmp / "out"
    proc = subprocess.Popen(_cli("segment", "--batch", str(data), "--out", str(out), "--model", str(env.pkg),
                                 "--backend", "onnx", "--progress", "none", "--no-qc"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert wait_until((out / "case000" / "report.json").exists, timeout=300, interval=0.005, proc=proc)
    proc.send_signal(signal.SIGTERM)
    text = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, text
    with open(out / "summary.csv", newline="") as f:
        rows = {r["case_id"]: r for r in csv.DictReader(f)}
    assert rows["case000"]["status"] == "done" and len(rows) == 5
    env.listed(rows["case004"], "interrupted (SIGTERM)", "run the same command again", status="interrupted")
    _no_leftovers(env, out)


@fault("signals", "listed")
def sigterm_after_a_case_was_written(env: Env) -> None:
    import csv

    from voxmmsd.io.results import WRITING

    data = synthetic.write_dataset(env.tmp / "cohort", n=2, geometry=GEOM, with_label=False)
    real_remove = os.remove

    def terminated(path, *a, **k):  # a real SIGTERM once case000's files are all in place, before its lock is freed
        real_remove(path, *a, **k)
        if Path(path).name == WRITING:
            os.kill(os.getpid(), signal.SIGTERM)

    env.monkeypatch.setattr(os, "remove", terminated)
    assert env.segment("--batch", str(data), "--no-qc") == 128 + signal.SIGTERM
    env.monkeypatch.setattr(os, "remove", real_remove)
    with open(env.tmp / "out" / "summary.csv", newline="") as f:
        rows = {r["case_id"]: r for r in csv.DictReader(f)}
    assert rows["case000"]["status"] == "done" and (env.tmp / "out" / "case000" / "report.json").is_file()
    env.listed(rows["case001"], "not started", status="interrupted")
    _no_leftovers(env, env.tmp / "out")


# -- 9. security ----------------------------------------------------------------------------------------

@fault("security", "ignored")
def catalog_archive_with_mode_4777(env: Env) -> None:
    import tarfile

    archive = env.tmp / "tiny-0.1.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        for p in [env.pkg, *sorted(env.pkg.iterdir())]:
            info = t.gettarinfo(str(p), arcname=str(Path("tiny") / p.relative_to(env.pkg)) if p != env.pkg else "tiny")
            info.mode = 0o4777  # setuid, world-writable: model.json holds the checksums
            if info.isfile():
                with open(p, "rb") as f:
                    t.addfile(info, f)
            else:
                t.addfile(info)
    _catalog(env, "0.1", url=archive.as_uri())
    res = env.tmp / "resources"
    entry = json.loads((res / "catalog.json").read_text())
    entry["models"][0].update(size=archive.stat().st_size, sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
                              url=archive.as_uri())
    (res / "catalog.json").write_text(json.dumps(entry))
    assert main(["models", "install", "tiny"]) == 0
    installed = env.home / "models" / "tiny" / "0.1"
    modes = {p.name: p.stat().st_mode & 0o7777 for p in [installed, *installed.iterdir()]}
    env.ignored(modes == {"0.1": 0o755, "model.json": 0o644, "model.onnx": 0o644, "weights.safetensors": 0o644},
                f"the archive's modes were applied: {modes}")


@fault("security", "escaped")
def formula_in_case_ids(env: Env) -> None:
    out = Path(str(_batch(env)["out"]))
    cells = [line.split(",", 1)[0] for line in (out / "summary.csv").read_text().splitlines()[1:]]
    formulas = sorted(c for c in cells if c.startswith("'"))
    env.escaped(formulas, sorted(["=2+5", "@SUM(1+1)"]))
    assert (out / "=2+5" / "report.json").is_file()  # the case itself was segmented


# -- 10. determinism: the same exam, the same answer ----------------------------------------------------

@fault("determinism", "same")
def registration_twice_same_transform(env: Env) -> None:
    from voxmmsd.exam import register as reg

    g = synthetic.default_geometry((64, 72, 56), spacing=(2.0, 2.0, 2.0))
    ph = synthetic.random_phantom(3)
    fixed = g.apply(sitk.GetImageFromArray(synthetic.sample_sequence(ph, g, "t1c", seed=1)))
    moved = synthetic.default_geometry((60, 70, 30), spacing=(2.0, 2.0, 4.0),
                                       direction=tuple((synthetic.rotation(0, 4.0)).ravel()))
    moving = moved.apply(sitk.GetImageFromArray(synthetic.sample_sequence(ph, moved, "t2w", seed=2)))
    runs = [reg.register_rigid(fixed, moving, "T2w", "T1c").transform.GetParameters() for _ in range(2)]
    env.same(np.asarray(runs[0]), np.asarray(runs[1]))


@fault("determinism", "same", slow=True)
def raw_exam_twice_same_labels(env: Env) -> None:
    pytest.importorskip("deepbet")
    from support.exams import write_raw_exam

    exam = write_raw_exam(env.tmp / "raw")
    for k in (1, 2):  # the same command twice
        assert main(["segment", str(exam), "--out", str(env.tmp / f"run{k}"), "--model", str(_tolerant(env)),
                     "--progress", "none", "--no-qc"]) == 0
    reports = [json.loads((env.tmp / f"run{k}" / "report.json").read_text()) for k in (1, 2)]
    assert reports[0]["inputs"]["preparation"]["registration"] == reports[1]["inputs"]["preparation"]["registration"]
    assert np.array_equal(_read(env.tmp / "run1" / "brain_mask.nii.gz"), _read(env.tmp / "run2" / "brain_mask.nii.gz"))
    env.same(_read(env.tmp / "run1" / "segmentation.nii.gz"), _read(env.tmp / "run2" / "segmentation.nii.gz"))


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
    for k, name in enumerate(("=2+5", "@SUM(1+1)")):  # case ids a spreadsheet would run as formulas
        synthetic.write_case(data / name, name, seed=7 + k, geometry=GEOM, with_label=False)
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


def _tolerant(env: Env) -> Path:
    return env.fixture("tolerant")  # type: ignore[attr-defined, no-any-return]


def _batch(env: Env) -> Dict[str, object]:
    return env.fixture("batch_run")  # type: ignore[attr-defined, no-any-return]  # built once, by the first that asks


@fault("batch", "listed")
def batch_case_with_two_flairs(env: Env) -> None:
    b = _batch(env)
    assert b["rc"] == 1
    env.listed(b["rows"]["case001"][0], "More than one T2-FLAIR")
    assert b["rows"]["case000"][0]["status"] == "done"  # the others ran


@fault("batch", "listed")
def batch_empty_case_folder(env: Env) -> None:
    env.listed(_batch(env)["rows"]["empty_case"][0], "holds no image")
    assert len(_batch(env)["rows"]["case000"]) == 2  # (__MACOSX/case000 is not a case folder)


@fault("batch", "listed")
def batch_case_folder_too_deep(env: Env) -> None:
    env.listed(_batch(env)["rows"]["scanner"][0], "two levels deep")


@fault("batch", "listed")
def batch_two_cases_with_one_id(env: Env) -> None:
    rows = _batch(env)["rows"]["case000"]
    assert rows[0]["status"] == "done"
    env.listed(rows[1], "Rename one")


@fault("batch", "listed")
def batch_unreadable_case(env: Env) -> None:
    env.listed(_batch(env)["rows"]["broken"][0], "broken-t1c.nii.gz")
    assert not (Path(str(_batch(env)["out"])) / "broken").exists()  # no empty folder left


# -- the table ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_package(tmp_path_factory.mktemp("pkg") / "tiny")


@pytest.fixture(scope="module")
def tolerant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny package, trained (as it says) to tolerate a missing sequence."""
    return build_tiny_package(tmp_path_factory.mktemp("tolerant") / "tolerant", tolerates_missing=True)


def _params() -> List[object]:
    return [pytest.param(f, id=f.name, marks=[pytest.mark.slow] if f.slow else []) for f in FAULTS]


@pytest.mark.parametrize("item", _params())
def test_fault(item: Fault, pkg: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
               monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    env = Env(tmp_path, pkg, caplog, monkeypatch)
    env.fixture = request.getfixturevalue  # type: ignore[attr-defined]  # the batch and the tolerant package, when used
    try:
        item.run(env)
    except VoxMMSDError as exc:  # a fault must be handled by the command, not escape from it
        raise AssertionError(f"{item.name}: {type(exc).__name__} escaped: {exc}") from None
    assert item.outcome in env.checked, (f"{item.name}: its declared outcome {item.outcome!r} was not checked "
                                         f"(checked: {sorted(env.checked)})")


def test_docs_list_every_fault() -> None:
    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    missing = [f.name for f in FAULTS if f"`{f.name}`" not in doc]
    assert not missing, f"docs/reliability.md does not list: {missing}"
    for f in FAULTS:  # the table row says the outcome the test asserts
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{f.name}` |"))
        assert f"| {f.area} | {f.outcome} |" in row, (f.name, row)
    assert f"{len(FAULTS)} faults" in doc
    assert len(FAULTS) >= 80
