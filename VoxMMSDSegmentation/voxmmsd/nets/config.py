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
    #: networks of this shape averaged at inference (a fold ensemble, :mod:`voxmmsd.nets.ensemble`); 1 = one U-Net
    members: int = 1

    def __post_init__(self) -> None:
        if len(self.channels) != 5 or len(self.dropout) != 5:
            raise ValueError("channels and dropout need five levels each")
        if not 1 <= self.members <= 16:
            raise ValueError(f"members={self.members}: an ensemble has 1 to 16 networks")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["dropout"] = list(self.dropout)
        if self.members == 1:  # single networks keep the form every earlier package and checkpoint has
            del d["members"]
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "UNetConfig":
        return cls(int(d.get("in_channels", 4)), int(d.get("num_classes", 4)),
                   tuple(int(c) for c in d.get("channels", (32, 64, 128, 256, 512))),
                   tuple(float(p) for p in d.get("dropout", (0.0, 0.0, 0.2, 0.2, 0.2))),
                   int(d.get("members", 1)))

    def single(self) -> "UNetConfig":
        """The configuration of one member network."""
        return UNetConfig(self.in_channels, self.num_classes, self.channels, self.dropout)

    @property
    def pyramid_channels(self) -> Tuple[int, ...]:
        """Channels of the decoder pyramid (full, 1/2, 1/4, 1/8 resolution)."""
        return tuple(self.channels[:4])

    @property
    def divisor(self) -> int:
        """Spatial sizes must be multiples of this (four 2x poolings)."""
        return 16
