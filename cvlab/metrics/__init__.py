"""Evaluation metrics (BLEU for captions)."""
