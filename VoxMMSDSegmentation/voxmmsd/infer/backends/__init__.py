"""Inference backends: a network as a function from (N, C, D, H, W) float32 images to (N, K, D, H, W) logits.

* :mod:`.base` -- the :class:`~.base.Backend` protocol, the out-of-memory signal, GPU per torchrun rank;
* :mod:`.torch_backend` -- PyTorch (CPU/CUDA, bf16/fp16, fused conv+BN, channels-last);
* :mod:`.onnx_backend` -- ONNX Runtime (no PyTorch needed);
* :mod:`.select` -- ``choose_backend`` / ``create_backend`` (imports the two above lazily).

Imports go one way (select -> backends -> base), so there is no import circle; this file imports nothing.
"""
