"""Drift detectors: pure, vectorised, no I/O, no clock, no globals.

Every windowed detector follows :class:`driftline.detectors.base.Detector`: ``update(values)``
with a numpy batch, ``reset()``, and ``result()`` returning a frozen :class:`DetectorResult`.
"""
