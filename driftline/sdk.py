"""Driftline's in-process SDK: ``driftline.sdk.Monitor`` (see :mod:`driftline.collectors.sdk`).

>>> import driftline.sdk
>>> hasattr(driftline.sdk, "Monitor")
True
"""

from driftline.collectors.sdk import Monitor

__all__ = ["Monitor"]
