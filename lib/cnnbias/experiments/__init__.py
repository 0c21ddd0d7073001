"""Experiments: the drivers and sweeps behind each figure and claim, one module per paper.

Layer: imports config, stats, claims, data, models, theory and engine; nothing below imports it.
"""
