"""The PyTorch backend: BatchNorm folded into the convolutions, in-place activations,
bf16/fp16 autocast where the device supports it, channels-last-3d on the CPU."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
from torch import nn

from voxmmsd.errors import ConfigError
from voxmmsd.infer.backends.base import DeviceOutOfMemoryError, gpu_for_rank
from voxmmsd.models.package import ModelPackage
from voxmmsd.nets.ensemble import build_network
from voxmmsd.nets.unet import ConvBlock
from voxmmsd.nets.weights import load_into

log = logging.getLogger(__name__)


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """Fold each BatchNorm into its convolution and make activations in-place (eval only; same outputs)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for module in model.modules():
        if isinstance(module, ConvBlock):
            seq = module.conv_conv
            for i in (0, 4):
                seq[i] = fuse_conv_bn_eval(seq[i], seq[i + 1])  # type: ignore[type-var, arg-type]
                seq[i + 1] = nn.Identity()
                seq[i + 2] = nn.LeakyReLU(inplace=True)
            seq[3] = nn.Identity()  # dropout is a no-op in eval
    return model


def cpu_supports_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def inference_dtype(device: torch.device, precision: str) -> Optional[torch.dtype]:
    """Autocast dtype: ``auto`` = bf16 (or fp16) on GPUs, bf16 on CPUs with native bf16, else fp32."""
    p = (precision or "auto").lower()
    if p in ("fp32", "float32"):
        return None
    if p in ("bf16", "bfloat16"):
        return torch.bfloat16
    if p in ("fp16", "float16"):
        return torch.float16
    if p != "auto":
        raise ConfigError(f"Unknown precision {precision!r}; use auto, bf16, fp16 or fp32.")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else None


class TorchBackend:
    """The package's U-Net in PyTorch, built once."""

    name = "torch"

    def __init__(self, package: ModelPackage, device: str = "auto", precision: str = "auto",
                 channels_last: bool = True) -> None:
        from voxmmsd.jobs.device import select_device

        self.package = package
        # under torchrun each rank of a sharded batch takes its own GPU
        rank_gpu = gpu_for_rank(torch.cuda.device_count()) if torch.cuda.is_available() else 0
        self.torch_device = select_device(device, rank_gpu)
        self.device = str(self.torch_device)
        self.precision = precision
        self.channels_last_requested = channels_last
        self.dtype = inference_dtype(self.torch_device, precision)
        # channels-last-3d pays off with oneDNN on the CPU; cuDNN picks its own layout
        self.channels_last = channels_last and self.torch_device.type == "cpu"
        model = build_network(package.unet_config())
        load_into(model, package.load_state_dict(), strict=True)
        model = fuse_for_inference(model).to(self.torch_device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        self.model = model

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._run(x, lambda out: out.float())

    def labels(self, x: np.ndarray) -> np.ndarray:
        """Class indices (N, D, H, W) uint8: the argmax is taken on the device, so only a
        sixteenth of the bytes come back (same result as ``forward(x).argmax(1)``)."""
        return self._run(x, lambda out: out.argmax(1).to(torch.uint8))

    def _run(self, x: np.ndarray, finish: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        try:
            t = t.to(self.torch_device, non_blocking=True)
            if self.channels_last:
                t = t.contiguous(memory_format=torch.channels_last_3d)
            with torch.inference_mode():
                if self.dtype is not None:
                    with torch.autocast(self.torch_device.type, dtype=self.dtype):
                        out = self.model(t)
                else:
                    out = self.model(t)
                return finish(out).contiguous().cpu().numpy()
        except torch.cuda.OutOfMemoryError as exc:
            del t
            torch.cuda.empty_cache()
            raise DeviceOutOfMemoryError(f"{self.device}: {str(exc).splitlines()[0]}") from None

    def on_cpu(self) -> "TorchBackend":
        return TorchBackend(self.package, "cpu", self.precision, self.channels_last_requested)

    def describe(self) -> Dict[str, Any]:
        return {"backend": self.name, "device": self.device, "torch": torch.__version__,
                "precision": str(self.dtype).replace("torch.", "") if self.dtype else "float32",
                "channels_last": self.channels_last}
