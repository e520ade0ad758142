"""Data preparation shared by training jobs (preprocessed-case cache)."""
