"""Segmentation metrics, BraTS style: overlap, surface distance, lesion-wise scores, folder evaluation.

numpy and scipy only (no PyTorch), so evaluation runs wherever inference runs.
Import the sub-modules you need; nothing is imported here.
"""
