"""Faults of models: bundled, downloaded and user packages, one range check at load. Registered in
:data:`support.reliability.FAULTS` on import."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Callable, Dict

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd.cli.main import main
from voxmmsd.errors import ModelError, VoxMMSDError

from support.packages import build_tiny_package
from support.reliability import ROOT, Env, _sha_of_tree, fault

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
    from voxmmsd.models.package import load_package, save_package
    from voxmmsd.preprocessing import PreprocessConfig

    from support.packages import tiny_state

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


