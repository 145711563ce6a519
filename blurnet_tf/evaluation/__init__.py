"""Evaluation: accuracy and attack metrics."""
