"""VoxMMSD engine: Vox-MMSD brain-tumour segmentation without Slicer.

Nothing is imported or computed here beyond the version: sub-packages are imported
by whoever needs them, so ``import voxmmsd`` stays cheap inside Slicer's GUI process.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
