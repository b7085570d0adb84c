"""Corpora: the embedded Festival demo corpus, corpus layouts on disk, and preprocessing into a feature cache."""
