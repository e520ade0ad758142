"""Network settings, free of PyTorch so that the ONNX-only inference path can read them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Tuple


@dataclass(frozen=True)
class UNetConfig:
    """Network settings (saved with every checkpoint and model package)."""

    in_channels: int = 4
    num_classes: int = 4  # background, NETC, SNFH, ET
    channels: Tuple[int, ...] = (32, 64, 128, 256, 512)
    dropout: Tuple[float, ...] = (0.0, 0.0, 0.2, 0.2, 0.2)

    def __post_init__(self) -> None:
        if len(self.channels) != 5 or len(self.dropout) != 5:
            raise ValueError("channels and dropout need five levels each")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["dropout"] = list(self.dropout)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "UNetConfig":
        return cls(int(d.get("in_channels", 4)), int(d.get("num_classes", 4)),
                   tuple(int(c) for c in d.get("channels", (32, 64, 128, 256, 512))),
                   tuple(float(p) for p in d.get("dropout", (0.0, 0.0, 0.2, 0.2, 0.2))))

    @property
    def pyramid_channels(self) -> Tuple[int, ...]:
        """Channels of the decoder pyramid (full, 1/2, 1/4, 1/8 resolution)."""
        return tuple(self.channels[:4])

    @property
    def divisor(self) -> int:
        """Spatial sizes must be multiples of this (four 2x poolings)."""
        return 16
