"""A tiny real model package: a random U-Net whose output layer is standardised on a synthetic case."""

from __future__ import annotations

from pathlib import Path

from voxmmsd.models.package import save_package

TINY = (4, 8, 16, 32, 64)


def tiny_state(seed: int = 0, num_classes: int = 4, in_channels: int = 4):
    """A tiny random U-Net whose output layer is standardised on a synthetic case, so that its
    predictions vary across the brain (several classes) instead of one class everywhere."""
    import tempfile

    import torch
    from voxmmsd import synthetic
    from voxmmsd.infer.window import pad_to, round_up
    from voxmmsd.io.discovery import find_case
    from voxmmsd.io.reader import load_case
    from voxmmsd.nets.unet import UNetConfig, VoxUNet
    from voxmmsd.preprocessing import PreprocessConfig, prepare

    torch.manual_seed(seed)
    cfg = UNetConfig(in_channels=in_channels, num_classes=num_classes, channels=TINY)
    net = VoxUNet(cfg).eval()
    with tempfile.TemporaryDirectory() as tmp:
        synthetic.write_case(Path(tmp), "calib", seed=100 + seed, with_label=False)
        case = load_case(find_case(Path(tmp)), with_label=False)
    prep = prepare(case.image, case.geometry.spacing, PreprocessConfig())
    x, _ = pad_to(prep.image, [round_up(n, 16) for n in prep.image.shape[1:]])
    with torch.no_grad():
        feats = net.pyramid(torch.from_numpy(x[None].copy()))[0]
        out = net.decoder.out_conv
        raw = torch.nn.functional.conv3d(feats, out.weight)
        mean, std = raw.mean(dim=(0, 2, 3, 4)), raw.std(dim=(0, 2, 3, 4)) + 1e-6
        out.weight.div_(std.view(-1, 1, 1, 1, 1))
        out.bias.copy_(-mean / std)
    return net.state_dict(), cfg


def build_tiny_package(folder: Path, *, seed: int = 0, model_id: str = "tiny", version: str = "0.1",
                       tolerates_missing: bool = False, export_onnx: bool = True, training=None, **kwargs) -> Path:
    from voxmmsd.preprocessing import PreprocessConfig

    state, cfg = tiny_state(seed)
    return save_package(folder, state, cfg, PreprocessConfig(), model_id=model_id, version=version,
                        tolerates_missing=tolerates_missing, export_onnx=export_onnx,
                        training=training or {"data": "synthetic"}, metrics={"dice_wt": 0.0}, **kwargs)
