"""Baselines and offline analysis on Spark (extra ``driftline[spark]``).

:func:`build_baseline` profiles every partition of a DataFrame on its executor (Arrow batches
through ``mapInArrow``) and merges the partial profiles on the executors in a tree, in
partition order, so the driver holds one partial profile whatever the number of rows; the
result is the same :class:`~driftline.profile.format.BaselineProfile` file
``driftline baseline build`` writes (within the bounds of docs/scale.md), the PCA
reconstruction model and embedding and text columns included. :func:`analyze`
cuts windows by a timestamp column, a window-id column or a record count and computes each
window whole with the same code as ``driftline analyze``, where its rows are (only windows
straddling partitions are shuffled); the reports are the same JSON.

Executors import Driftline: on a cluster, install the same Driftline version on the driver and
the executors (a wheel in ``spark.archives`` or the cluster's image).
"""

from __future__ import annotations

from driftline.spark.analyze import analyze
from driftline.spark.build import build_baseline
from driftline.spark.source import read_table

__all__ = ["analyze", "build_baseline", "read_table"]
