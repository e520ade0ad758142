"""Inference: predictor, backends (PyTorch, ONNX Runtime), windows, TTA, post-processing, outputs, batch.

Importing this package (or any module on the ONNX path) never imports PyTorch.
"""
