"""Pretraining a tsdiff base on a corpus of real and synthetic series."""
