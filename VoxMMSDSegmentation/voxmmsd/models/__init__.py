"""Model packages (``model.json`` + weights + ONNX), the catalog, downloads and the per-user cache.

Nothing here imports PyTorch at import time: a package can be loaded and run through
ONNX Runtime on a machine without PyTorch.
"""
