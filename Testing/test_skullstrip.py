"""Brain extraction's own guards: deepbet's networks are loaded only when they are the published files."""

from __future__ import annotations

import pytest
from voxmmsd.errors import ConfigError
from voxmmsd.exam import skullstrip

pytest.importorskip("deepbet")


def test_the_installed_networks_are_the_published_ones() -> None:
    extractor = skullstrip.BrainExtractor("cpu")
    assert extractor.describe()["tool"] == "deepbet" and extractor.device == "cpu"
    assert skullstrip.availability() is None


def test_a_network_with_another_checksum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(skullstrip.MODEL_SHA256, "model.pt", "0" * 64)
    with pytest.raises(ConfigError, match="refusing to load it"):
        skullstrip.BrainExtractor("cpu")


def test_unknown_mode_is_refused() -> None:
    from voxmmsd.exam.register import check_mode

    assert check_mode("AUTO", "--skull-strip") == "auto"
    with pytest.raises(ConfigError, match="--skull-strip 'yes'; use one of auto, on, off"):
        check_mode("yes", "--skull-strip")
