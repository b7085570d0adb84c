"""Evaluation: objective metrics against a reference set, and the MOS listening test (export and analysis)."""
