"""Register the bundled real case with Slicer's Sample Data module (runs inside Slicer only)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_FILES = (("t1", "BraTS18-sample_t1"), ("t1ce", "BraTS18-sample_t1ce"), ("t2", "BraTS18-sample_t2"),
                ("flair", "BraTS18-sample_flair"))


def register(module_dir: Path) -> None:
    """Offer the bundled real case (four sequences) in Slicer's Sample Data module, category VoxMMSD."""
    import SampleData

    sample_dir = module_dir / "Resources" / "Sample" / "BraTS18-sample"
    if not sample_dir.is_dir():
        return
    files = [sample_dir / f"{stem}.nii.gz" for _, stem in SAMPLE_FILES]
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="VoxMMSD",
        sampleName="BraTS18-sample",
        uris=[p.as_uri() for p in files],
        fileNames=[p.name for p in files],
        nodeNames=[stem for _, stem in SAMPLE_FILES],
        thumbnailFileName=str(module_dir / "Resources" / "Icons" / "VoxMMSDSegmentation.png"),
        loadFileType="VolumeFile",
    )
