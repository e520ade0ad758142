"""Networks and their weights (needs PyTorch)."""
