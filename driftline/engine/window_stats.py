"""One window's statistics: the columns of a closed window in, a :class:`WindowReport` out.

Pure and vectorised (one numpy pass per feature, no per-row Python): the monitor calls
:func:`compute_window` when a window closes; :class:`ReferenceArrays` holds the profile's bins and
summaries as numpy arrays, built once per monitor so nothing is re-derived per window.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import MISSING, dataclass, field, fields
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from driftline.detectors.chi2 import chi2_many, chi2_two_sample
from driftline.detectors.classification import (
    CLASSIFICATION_METRICS,
    estimated_metrics,
    realised_metrics,
)
from driftline.detectors.distances import (
    jensen_shannon,
    jensen_shannon_many,
    jensen_shannon_many_positive,
    jensen_shannon_many_prepared,
    js_reference,
)
from driftline.detectors.dle import estimate_losses
from driftline.detectors.ks import ks_pvalues_fast, reference_size
from driftline.detectors.multiple_testing import benjamini_hochberg
from driftline.detectors.performance import (
    calibrate,
    confidence_and_entropy,
    estimated_accuracy,
    finite_rows,
)
from driftline.detectors.psi import (
    positive_bins,
    psi,
    psi_corrected,
    psi_many,
    psi_many_positive,
    psi_many_prepared,
    psi_reference,
)
from driftline.detectors.regression import realised_regression
from driftline.engine.kernels import (
    STACK,
    NumericWindow,
    ReferenceStack,
    centred_sums,
    numeric_window,
    numeric_windows,
    stacked_arrays,
)
from driftline.engine.snapshot import FeatureDrift, Performance, PredictionDrift, WindowReport
from driftline.profile.format import BaselineProfile, CategoricalFeature, Feature, NumericFeature
from driftline.profile.trees import PREDICTION_INPUT

if TYPE_CHECKING:
    import pyarrow as pa

    from driftline.engine.monitor import DriftPolicy


@dataclass(frozen=True)
class NumericRef:
    edges: np.ndarray
    proportions: np.ndarray
    summary: np.ndarray
    std: float
    #: reference values the summary stands for (the KS p-value's reference size)
    count: int

    @classmethod
    def of(cls, f: NumericFeature) -> NumericRef:
        """The summary is used as it is when already sorted, as every builder writes it (a
        read-only array: no per-monitor copy of up to tens of thousands of values)."""
        s = f.summary_array
        if len(s) > 1 and not bool(np.all(s[1:] >= s[:-1])):  # NaN-free: summaries are finite
            s = np.sort(s)
        return cls(f.edges_array, f.proportions_array, s, f.std, f.count)

    @cached_property
    def bins(self) -> int:
        """The reference's :func:`~driftline.detectors.psi.positive_bins` (the bias correction's
        ``B``), counted once."""
        return positive_bins(self.proportions)

    @cached_property
    def sums(self) -> np.ndarray:
        """The summary's centred cumulative sums for the window kernel's Wasserstein distance
        (:func:`~driftline.engine.kernels.centred_sums`; 8 bytes per summary value), made on
        the first window closed."""
        return centred_sums(self.summary)


@dataclass(frozen=True)
class CategoricalRef:
    categories: tuple[str, ...]
    #: category → slot, for :func:`category_codes`
    lookup: Mapping[str, int]
    proportions: np.ndarray
    #: reference counts per slot (the χ² contingency table's first row)
    counts: np.ndarray

    @cached_property
    def bins(self) -> int:
        """:func:`~driftline.detectors.psi.positive_bins` of the reference, counted once."""
        return positive_bins(self.proportions)

    @cached_property
    def total(self) -> int:
        """The reference's record count (the χ² table's first row sum)."""
        return int(self.counts.sum())

    @cached_property
    def lookup_missing(self) -> dict[str | None, int]:
        """:attr:`lookup` with None (missing) → -1."""
        out: dict[str | None, int] = {None: -1}
        out.update(self.lookup)
        return out

    @cached_property
    def value_set(self) -> pa.Array:
        """The categories as an Arrow array, built on the first large :func:`category_codes`
        call only: importing pyarrow costs the sidecar ≈ 30 MiB (and pyarrow's first array
        imports pandas when it is installed, ≈ 40 MiB more)."""
        import pyarrow as pa

        return pa.array(list(self.categories), type=pa.string())


class ReferenceArrays:
    """The profile's reference distributions as ready-to-use arrays."""

    def __init__(self, profile: BaselineProfile) -> None:
        self.profile = profile
        self.numeric: dict[str, NumericRef] = {}
        self.numeric_names: list[str] = []
        self._stacks: dict[tuple[int, ...], list[tuple[ReferenceStack, list[int]]]] = {}
        self._blocks: dict[tuple[int, ...], list[_StackBlock] | None] = {}
        self._shares: dict[tuple[str, ...], _Shares] = {}
        self.categorical: dict[str, CategoricalRef] = {}
        for name, f in profile.features.items():
            if isinstance(f, NumericFeature):
                self.numeric[name] = NumericRef.of(f)
                self.numeric_names.append(name)
            else:
                self.categorical[name] = _cat_ref(f)
        out = profile.output
        self.classes: tuple[str, ...] = out.classes if out is not None else ()
        self.class_ref = _cat_ref(CategoricalFeature("prediction", self.classes,
                                                     (*([0.0] * len(self.classes)), 0.0), 0, 0.0))
        self.prediction_numeric: NumericRef | None = None
        self.prediction_categorical: CategoricalRef | None = None
        if out is not None and out.prediction is not None:
            p = out.prediction
            if isinstance(p, NumericFeature):
                self.prediction_numeric = NumericRef.of(p)
            else:
                self.prediction_categorical = _cat_ref(p)
        self.positive_index = (self.classes.index(out.positive_class)
                               if out is not None and out.positive_class in self.classes else None)
        self.regression = out is not None and out.task == "regression"
        self.loss_model = out.loss_model if out is not None else None
        self.loss_refs = (loss_refs(self.loss_model.categories) if self.loss_model is not None
                          else {})

    def numeric_stacks(self, rows: tuple[int, ...]) -> list[tuple[ReferenceStack, list[int]]]:
        """The numeric features ``rows`` (indices into :attr:`numeric_names`) as
        :class:`~driftline.engine.kernels.ReferenceStack` groups of one summary size and one
        number of bin edges, at most :data:`~driftline.engine.kernels.STACK` each (balanced),
        with each group's members as positions in ``rows``; built on the first window of at
        most :data:`STACK_WINDOW` values and kept (8 bytes per summary value: the stack's copy
        of the summaries; its centred sums stand in for the features' own)."""
        got = self._stacks.get(rows)
        if got is not None:
            return got
        groups: dict[tuple[int, int], list[int]] = {}
        for pos, i in enumerate(rows):
            r = self.numeric[self.numeric_names[i]]
            if len(r.summary):
                groups.setdefault((len(r.summary), len(r.edges)), []).append(pos)
        out = []
        for members in groups.values():
            parts = -(-len(members) // STACK)
            for c in range(parts):
                chunk = members[c * len(members) // parts:(c + 1) * len(members) // parts]
                if len(chunk) < 2:
                    continue
                refs = [self.numeric[self.numeric_names[rows[p]]] for p in chunk]
                out.append((ReferenceStack.build([r.summary for r in refs],
                                                 [r.edges for r in refs]), chunk))
        self._stacks[rows] = out
        return out

    def numeric_blocks(self, rows: tuple[int, ...]) -> list[_StackBlock] | None:
        """:meth:`numeric_stacks` of ``rows`` with what :func:`_numeric_block` needs of each
        stack made once; None unless the stacks hold every feature of ``rows``."""
        if rows in self._blocks:
            return self._blocks[rows]
        blocks: list[_StackBlock] | None = []
        held = 0
        for stack, members in self.numeric_stacks(rows):
            refs = [self.numeric[self.numeric_names[rows[p]]] for p in members]
            held += len(members)
            assert blocks is not None
            blocks.append(_StackBlock(
                stack, members, _run(members), np.arange(len(members)),
                _Shares.of(np.stack([r.proportions for r in refs])),
                [reference_size(len(r.summary), r.count) for r in refs]))
        if held != len(rows):
            blocks = None
        self._blocks[rows] = blocks
        return blocks

    def numeric_shares(self, rows: tuple[int, ...]) -> _Shares | None:
        """The numeric features ``rows``' :class:`_Shares` in that order when they have one
        number of bins (else None: :func:`_numeric_block` takes each stack's own)."""
        names = tuple(self.numeric_names[i] for i in rows)
        if len({len(self.numeric[n].proportions) for n in names}) != 1:
            return None
        return self.shares(names, [self.numeric[n].proportions for n in names])

    def shares(self, names: tuple[str, ...], proportions: list[np.ndarray]) -> _Shares:
        """The categorical features ``names``' :class:`_Shares` (their ``proportions``), made
        on the first window."""
        got = self._shares.get(names)
        if got is None:
            got = self._shares[names] = _Shares.of(np.stack(proportions))
        return got

    @property
    def binary_positive(self) -> int | None:
        """The positive column of a binary model (its positive class, else the second class)."""
        if len(self.classes) != 2:
            return None
        return self.positive_index if self.positive_index is not None else 1


@dataclass(frozen=True)
class _Shares:
    """Reference shares of features with one number of bins (``k × B``) and their PSI and
    Jensen–Shannon reference sides (:func:`psi_reference`, :func:`js_reference`), which do
    not change from window to window."""

    proportions: np.ndarray
    psi: tuple[np.ndarray, np.ndarray]
    js: tuple[np.ndarray, np.ndarray]

    #: every reference row sums above 0 (then a window whose rows do too takes the
    #: unguarded forms)
    plain: bool

    @classmethod
    def of(cls, proportions: np.ndarray) -> _Shares:
        ref, js = psi_reference(proportions), js_reference(proportions)
        return cls(proportions, ref, js, not ref[1].any() and bool(js[1].all()))

    def psi_js(self, counts: np.ndarray) -> tuple[list[float], list[float]]:
        """PSI and Jensen–Shannon of each row of ``counts`` (= :func:`psi_many`,
        :func:`jensen_shannon_many` of the proportions: the same floats), without their
        empty-row guards when no row is empty (every numeric window, nearly every
        categorical one)."""
        c = np.asarray(counts, dtype=np.float64)
        totals = c.sum(axis=1, keepdims=True)
        if self.plain and bool((totals > 0).all()):
            return (psi_many_positive(self.psi[0], c, totals).tolist(),
                    jensen_shannon_many_positive(self.js[0], c, totals).tolist())
        return (psi_many_prepared(self.psi, c).tolist(),
                jensen_shannon_many_prepared(self.js, c).tolist())


@dataclass(frozen=True)
class _StackBlock:
    """One :class:`~driftline.engine.kernels.ReferenceStack` of :meth:`ReferenceArrays.
    numeric_blocks`: its members (positions in the rows asked for), their span when they are
    consecutive (then the window's rows are a view), its own row indices, its features'
    shares, and their KS reference sizes."""

    stack: ReferenceStack
    members: list[int]
    span: tuple[int, int] | None
    rows: np.ndarray
    shares: _Shares
    sizes: list[int]


def _run(members: list[int]) -> tuple[int, int] | None:
    """``(first, last + 1)`` when ``members`` are consecutive, else None."""
    first = members[0]
    return (first, first + len(members)) if members == list(range(first, first + len(members))) else None


def _cat_ref(f: CategoricalFeature) -> CategoricalRef:
    return CategoricalRef(f.categories, {c: i for i, c in enumerate(f.categories)},
                          f.proportions_array, f.counts_array)


def loss_refs(categories: Mapping[str, tuple[str, ...]]) -> dict[str, CategoricalRef]:
    """Lookup tables of a loss model's categorical inputs."""
    return {n: _cat_ref(CategoricalFeature(n, cats, (*([0.0] * len(cats)), 0.0), 0, 0.0))
            for n, cats in categories.items()}


def loss_matrix(inputs: tuple[str, ...], refs: Mapping[str, CategoricalRef],
                columns: Mapping[str, np.ndarray], prediction: np.ndarray) -> np.ndarray:
    """The direct-loss-estimation inputs as one float matrix: numeric features as they are,
    categorical ones as their reference category index (``K`` for any other value, NaN when
    missing), the prediction in its own column."""
    n = len(prediction)
    x = np.empty((n, len(inputs)))
    for j, name in enumerate(inputs):
        if name == PREDICTION_INPUT:
            x[:, j] = np.asarray(prediction, dtype=np.float64)
        elif name in refs:
            codes = category_codes(np.asarray(columns[name], dtype=object), refs[name])
            x[:, j] = np.where(codes >= 0, codes, np.nan)
        else:
            x[:, j] = np.asarray(columns[name], dtype=np.float64)
    return x


def loss_inputs(features: Mapping[str, Feature], columns: Mapping[str, np.ndarray],
                prediction: np.ndarray,
                ) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]], np.ndarray]:
    """Inputs, categories and matrix of a new loss model over the baseline's features."""
    inputs = (*features, PREDICTION_INPUT)
    categories = {n: f.categories for n, f in features.items()
                  if isinstance(f, CategoricalFeature)}
    return inputs, categories, loss_matrix(inputs, loss_refs(categories), columns, prediction)


#: From this many values on, :func:`category_codes` hashes through Arrow (faster on the large
#: columns of offline analysis); below it a dict lookup is faster and keeps pyarrow out of the
#: sidecar, whose windows and count blocks are a few thousand records.
ARROW_CODES_FROM = 20_000


def category_codes(values: np.ndarray, ref: CategoricalRef) -> np.ndarray:
    """Per value: index of its reference category, ``len(categories)`` for ``__other__``, -1 when
    missing (None, NaN, infinity). Non-string values are looked up as their ``str``."""
    if len(values) >= ARROW_CODES_FROM:
        codes = _arrow_codes(values, ref)
        if codes is not None:
            return codes
    k = len(ref.categories)
    get = ref.lookup.get

    def code(v: Any) -> int:
        if v.__class__ is str:
            return get(v, k)
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return -1
        return get(v if isinstance(v, str) else str(v), k)

    # dict.get mapped in C (no Python frame per value, ≈ 15× faster than ``code``): exact for
    # strings and None; only the values it sends to ``__other__`` (where a NaN, a number or a
    # truly unseen string lands) are looked at again one by one
    items = values.tolist()
    codes = np.fromiter(map(ref.lookup_missing.get, items, itertools.repeat(k)),
                        dtype=np.int64, count=len(items))
    for i in np.flatnonzero(codes == k).tolist():
        codes[i] = code(items[i])
    return codes


def _arrow_codes(values: np.ndarray, ref: CategoricalRef) -> np.ndarray | None:
    """Arrow's hash lookup; None for values that are not all strings (or missing)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    k = len(ref.categories)
    try:
        arr = pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    idx = pc.index_in(arr, value_set=ref.value_set)
    codes = idx.fill_null(k).to_numpy(zero_copy_only=False).astype(np.int64)
    if arr.null_count:
        codes[np.asarray(arr.is_null())] = -1
    return codes


def code_counts(codes: np.ndarray, k: int) -> np.ndarray:
    """Counts per category slot (``k + 1`` entries, last = ``__other__``); missing skipped."""
    return np.bincount(codes[codes >= 0], minlength=k + 1)


def _numeric_drift(name: str, values: np.ndarray, ref: NumericRef, *,
                   approximate: bool = True) -> FeatureDrift:
    finite = values[np.isfinite(values)]
    k = numeric_window(ref.summary, ref.edges, finite, ref.count, approximate=approximate,
                       sums=ref.sums)
    return FeatureDrift(drifted=False, **_numeric_fields(name, len(values), len(finite), k, ref))


def _finite(values: np.ndarray) -> np.ndarray:
    """The finite values (the column itself when all are: the common case, no copy)."""
    ok = np.isfinite(values)
    return values if ok.all() else values[ok]


def _numeric_block(ref: ReferenceArrays, cols: WindowColumns, rows: list[int], *,
                   approximate: bool = True) -> list[dict[str, Any]] | None:
    """:func:`_numeric_part` of a window whose features ``rows`` all have ``cols.records``
    finite float values and all lie in a stack (the sidecar's usual window); None otherwise.

    The same floats, with less per-feature work around the numpy calls: the window's columns
    stacked once (each stack takes its rows as a view) and checked finite in one call, each
    stack's counts given to PSI and Jensen–Shannon as they come (no per-feature regrouping),
    the reference sides of those kept (:class:`_Shares`), the p-values in one call."""
    w = cols.records
    if not 2 <= w <= STACK_WINDOW:
        return None
    blocks = ref.numeric_blocks(tuple(rows))
    if blocks is None:
        return None
    names = [ref.numeric_names[i] for i in rows]
    values = [cols.features[n] for n in names]
    if any(v.dtype != np.float64 or v.shape != (w,) for v in values):
        return None
    matrix = np.stack(values)
    if not np.isfinite(matrix).all():
        return None
    k = len(names)
    ds: list[float] = [0.0] * k
    wass: list[float] = [0.0] * k
    sizes: list[int] = [0] * k
    done = [stacked_arrays(b.stack, b.rows, matrix[b.span[0]:b.span[1]] if b.span is not None
                           else matrix[b.members]) for b in blocks]
    # PSI and Jensen–Shannon of every feature in one evaluation when they have one number of
    # bins (the usual deciles), else one per stack; each row is computed alone either way
    shares = ref.numeric_shares(tuple(rows))
    if shares is not None:
        every = np.empty((k, shares.proportions.shape[1]), dtype=done[0][0].dtype)
        for b, (c, _, _) in zip(blocks, done, strict=True):
            every[b.members] = c
        counts: list[Any] = every.tolist()
        psis, jss = shares.psi_js(every)
    else:
        counts, psis, jss = [None] * k, [0.0] * k, [0.0] * k
        for b, (c, _, _) in zip(blocks, done, strict=True):
            for p, ci, pi, ji in zip(b.members, c.tolist(), *b.shares.psi_js(c), strict=True):
                counts[p], psis[p], jss[p] = ci, pi, ji
    for b, (_, d, ws) in zip(blocks, done, strict=True):
        for p, di, wi, si in zip(b.members, d, ws, b.sizes, strict=True):
            ds[p], wass[p], sizes[p] = di, wi, si
    pvals = ks_pvalues_fast(ds, sizes, [w] * k, approximate=approximate)
    return [_numeric_dict(name, w, w, ref.numeric[name], value, js, d, p, x, tuple(c))
            for name, c, (d, p), x, value, js in zip(names, counts, pvals, wass, psis, jss,
                                                     strict=True)]


def _numeric_part(ref: ReferenceArrays, cols: WindowColumns, rows: list[int], *,
                  approximate: bool = True) -> list[dict[str, Any]]:
    """The numeric features ``rows`` (indices into ``ref.numeric_names``) of a window, as
    :class:`FeatureDrift` fields: their statistics in one stacked pass and their p-values in
    one vectorised evaluation (:func:`~driftline.engine.kernels.numeric_windows`), PSI and
    Jensen–Shannon in one per number of bins (:func:`psi_many`, :func:`jensen_shannon_many`),
    each the same floats as the per-feature functions."""
    names = [ref.numeric_names[i] for i in rows]
    refs = [ref.numeric[n] for n in names]
    values = [cols.features[n] for n in names]
    finite = [_finite(v) for v in values]
    stacks = ref.numeric_stacks(tuple(rows)) if 2 <= cols.records <= STACK_WINDOW else []
    # a feature's own sums are made only when it is computed alone (a stacked feature uses
    # its stack's)
    kernels = numeric_windows([(r.summary, r.edges, f, r.count)
                               for r, f in zip(refs, finite, strict=True)],
                              lambda j: refs[j].sums, approximate=approximate, stacks=stacks)
    psis = [math.nan] * len(names)
    jss = [math.nan] * len(names)
    by_bins: dict[int, list[int]] = {}
    for j, k in enumerate(kernels):
        by_bins.setdefault(len(k.counts), []).append(j)
    for group in by_bins.values():
        props = np.stack([refs[j].proportions for j in group])
        counts = np.stack([kernels[j].counts for j in group])
        for j, a, b in zip(group, psi_many(props, counts).tolist(),
                           jensen_shannon_many(props, counts).tolist(), strict=True):
            psis[j], jss[j] = a, b
    return [_numeric_fields(n, len(v), len(f), k, r, psis[j], jss[j])
            for j, (n, v, f, k, r) in enumerate(zip(names, values, finite, kernels, refs,
                                                    strict=True))]


def _numeric_fields(name: str, n: int, n_finite: int, k: NumericWindow, ref: NumericRef,
                    value: float | None = None, js: float | None = None) -> dict[str, Any]:
    """A numeric feature's :class:`FeatureDrift` fields but the decision (a dict: the report
    object is made once, when the decision is known)."""
    if value is None:
        value = psi(ref.proportions, k.counts)
    if js is None:
        js = jensen_shannon(ref.proportions, k.counts)
    return _numeric_dict(name, n, n_finite, ref, value, js, k.ks_statistic, k.ks_pvalue,
                         k.wasserstein, tuple(k.counts.tolist()))


def _numeric_dict(name: str, n: int, n_finite: int, ref: NumericRef, value: float, js: float,
                  ks: float, ks_p: float, wasserstein: float,
                  counts: tuple[Any, ...]) -> dict[str, Any]:
    """The fields of :func:`_numeric_fields` from the window's statistics, shared with
    :func:`_numeric_block` (which has them without a :class:`NumericWindow`): the corrected
    PSI, the missing share and the Wasserstein distance in reference standard deviations."""
    n_missing = n - n_finite
    if ref.std > 0 and math.isfinite(ref.std):
        wasserstein = wasserstein / ref.std
    return {"name": name, "type": "numeric", "psi": value,
            "psi_corrected": psi_corrected(value, ref.proportions, n_finite, ref.count,
                                           bins=ref.bins),
            "jensen_shannon": js,
            "missing_ratio": n_missing / n if n else math.nan, "n": n_finite,
            "n_missing": n_missing, "ks_statistic": ks, "ks_pvalue": ks_p,
            "wasserstein": wasserstein, "window_counts": counts}


def _categorical_part(ref: ReferenceArrays, cols: WindowColumns,
                      names: list[str]) -> list[dict[str, Any]]:
    """The categorical features ``names`` of a window, as :class:`FeatureDrift` fields: each
    feature's category codes (``cols.codes``' when given, else looked up and kept there for
    the multivariate encoder) and counts,
    then χ², PSI and Jensen–Shannon of all features with the same number of slots in one
    evaluation each (:func:`chi2_many`, :func:`psi_many`, :func:`jensen_shannon_many`), the
    same floats as one feature at a time."""
    refs = [ref.categorical[n] for n in names]
    counts = []
    for name, r in zip(names, refs, strict=True):
        codes = cols.codes.get(name)
        if codes is None:
            codes = cols.codes[name] = category_codes(cols.features[name], r)
        counts.append(code_counts(codes, len(r.categories)))
    stats: list[tuple[float, float, float, float]] = [(math.nan,) * 4] * len(names)
    by_slots: dict[int, list[int]] = {}
    for j, c in enumerate(counts):
        by_slots.setdefault(len(c), []).append(j)
    for group in by_slots.values():
        ref_counts = np.stack([refs[j].counts for j in group])
        shares = ref.shares(tuple(names[j] for j in group),
                            [refs[j].proportions for j in group])
        cur = np.stack([counts[j] for j in group])
        psis, jss = shares.psi_js(cur)
        for j, (stat, p), a, b in zip(group, chi2_many(ref_counts, cur), psis, jss,
                                      strict=True):
            stats[j] = (stat, p, a, b)
    out = []
    for name, r, c, (stat, p, value, js) in zip(names, refs, counts, stats, strict=True):
        n = len(cols.features[name])
        valid = int(c.sum())
        out.append({"name": name, "type": "categorical", "psi": value,
                    "psi_corrected": psi_corrected(value, r.proportions, valid, r.total,
                                                   bins=r.bins),
                    "jensen_shannon": js,
                    "missing_ratio": (n - valid) / n if n else math.nan, "n": valid,
                    "n_missing": n - valid, "chi2_statistic": stat, "chi2_pvalue": p,
                    "window_counts": tuple(c.tolist())})
    return out


def gate_psi(raw: float, corrected: float | None, policy: DriftPolicy) -> float:
    """The PSI the decision gates on: the bias-corrected one unless ``policy.correct_psi`` is off."""
    if policy.correct_psi and corrected is not None:
        return corrected
    return raw


def _decided(f: dict[str, Any], adjusted: float, policy: DriftPolicy,
             min_records: int) -> FeatureDrift:
    """The report of one feature: its fields with the drift decision of ``policy``."""
    if f["n"] < min_records:
        return _feature_drift(f, drifted=False, p_value_adjusted=adjusted,
                              insufficient_data=True)
    value = gate_psi(f["psi"], f["psi_corrected"], policy)
    big = bool(math.isfinite(value) and value >= policy.psi_threshold)
    significant = (not policy.require_significance) or bool(math.isfinite(adjusted)
                                                            and adjusted < policy.alpha)
    return _feature_drift(f, drifted=big and significant, p_value_adjusted=adjusted)


#: :class:`FeatureDrift`'s fields in their order, with their defaults (None for the fields
#: without one, which the window close always gives), for :func:`_feature_drift`
_FEATURE_TEMPLATE = {f.name: None if f.default is MISSING else f.default
                     for f in fields(FeatureDrift)}
#: whether a FeatureDrift is nothing but its fields (no ``__post_init__``, slots or default
#: factories): then :func:`_feature_drift` may fill one in directly
_PLAIN_FEATURE = (not hasattr(FeatureDrift, "__post_init__")
                  and not hasattr(FeatureDrift, "__slots__")
                  and all(f.default_factory is MISSING for f in fields(FeatureDrift)))


def _feature_drift(f: dict[str, Any], **decision: Any) -> FeatureDrift:
    """``FeatureDrift(**f, **decision)`` (equal, tested) without the frozen dataclass's
    ``__init__``, which sets each of its 18 fields through ``object.__setattr__``: ≈ 3 µs of
    the ≈ 4 a feature's report cost, for the 25 of every window (``f`` holds only fields,
    the window close's own)."""
    if not _PLAIN_FEATURE:  # pragma: no cover - FeatureDrift as it is now is plain
        return FeatureDrift(**f, **decision)
    out: FeatureDrift = object.__new__(FeatureDrift)
    d = out.__dict__
    d.update(_FEATURE_TEMPLATE)  # the fields' order first: updates keep it
    d.update(f)
    d.update(decision)
    return out


#: Windows of at most this many records compute their numeric features in stacks
#: (:meth:`ReferenceArrays.numeric_stacks`); above it a feature's own numpy calls are long
#: enough that their fixed cost does not matter, and a stack's temporaries leave the cache.
#: Measured (20 numeric features, CPU ms per window, min of 6 interleaved rounds, load 5–6):
#: 1000 records 3.78 → 2.82 (5000-value references) and 5.19 → 3.95 (20 000), stacks of 7;
#: 3000 records 6.38 against 6.27–7.57 stacked, no gain.
STACK_WINDOW = 2_000

#: Windows of at least this many records compute their features on a thread pool: numpy and
#: Arrow release the GIL in the sorts, merges and hash lookups that dominate a feature's cost,
#: so a 10k-record window uses every core; below it the hand-off costs more than it saves.
PARALLEL_RECORDS = 2_000
_POOL: list[ThreadPoolExecutor] = []
POOL_WORKERS = 4
#: Open :func:`without_pool` blocks: while any is, windows are computed on the calling thread.
_NO_POOL = [0]


@contextlib.contextmanager
def without_pool() -> Iterator[None]:
    """Windows closed inside compute their features on the calling thread. ``analyze`` in
    several processes gives each a core, and then the pool's threads only add their cost:
    at 10k-record windows of the benchmark's 25 features a pooled window took 21.6 ms of CPU
    against 18.2 on one thread (min of 8 interleaved rounds, load 4.4)."""
    _NO_POOL[0] += 1
    try:
        yield
    finally:
        _NO_POOL[0] -= 1


def _pool() -> ThreadPoolExecutor | None:
    """The shared feature pool (one per process, made on first use), None on one core."""
    if not _POOL:
        workers = min(POOL_WORKERS, os.cpu_count() or 1)
        if workers < 2:
            return None
        _POOL.append(ThreadPoolExecutor(workers, thread_name_prefix="driftline-window"))
    return _POOL[0]


@dataclass
class WindowColumns:
    """The concatenated columns of one closed window."""

    records: int
    features: dict[str, np.ndarray]
    prediction: np.ndarray | None
    probabilities: np.ndarray | None
    targets: np.ndarray | None
    start: float | None
    end: float | None
    #: the categorical features' :func:`category_codes` against the profile's categories:
    #: those given (the batches' :attr:`~driftline.engine.records.RecordBatch.codes`) are
    #: used as they are, the others are looked up and set by :func:`compute_window` (the
    #: multivariate encoder reuses them instead of a second lookup of every value)
    codes: dict[str, np.ndarray] = field(default_factory=dict)
    #: ``category_codes(prediction, ref.class_ref)`` when the monitor has them (looked up as
    #: the records arrived; then the prediction column is not None), else None: looked up
    #: by :func:`compute_window`
    class_codes: np.ndarray | None = None


def predicted_labels(ref: ReferenceArrays, cols: WindowColumns) -> np.ndarray | None:
    """The predicted class per row: the prediction column, else the argmax of the probabilities."""
    if cols.prediction is not None:
        return cols.prediction
    if cols.probabilities is not None and ref.classes:
        p = cols.probabilities
        valid = ~np.isnan(p).any(axis=1)
        out = np.full(len(p), None, dtype=object)
        if valid.any():
            out[valid] = np.asarray(ref.classes, dtype=object)[np.argmax(p[valid], axis=1)]
        return out
    return None


def realised_accuracy(predicted: np.ndarray, targets: np.ndarray) -> tuple[float | None, int]:
    """(accuracy, labelled rows) over rows where both the prediction and the label are known."""
    ok = (predicted != None) & (targets != None)  # noqa: E711 - elementwise on object arrays
    n = int(ok.sum())
    if n == 0:
        return None, 0
    return float(np.count_nonzero(predicted[ok] == targets[ok])) / n, n


def compute_window(ref: ReferenceArrays, cols: WindowColumns, *, index: int,
                   policy: DriftPolicy, min_records: int = 1,
                   label_accuracy: tuple[float | None, int] = (None, 0),
                   label_realised: Mapping[str, float] | None = None) -> WindowReport:
    """Every statistic of one window, with the drift decision of ``policy``.

    Below ``min_records`` records (for a feature: valid values) there is no decision: the
    statistics are reported, flagged ``insufficient_data``, and nothing is drifted."""
    def part(task: tuple[list[int], list[str]]) -> list[dict[str, Any]]:
        rows, categorical = task
        if categorical:
            return _categorical_part(ref, cols, categorical)
        fast = _numeric_block(ref, cols, rows, approximate=not policy.exact_ks)
        return fast if fast is not None else _numeric_part(ref, cols, rows,
                                                           approximate=not policy.exact_ks)

    names = list(ref.profile.features)
    k = len(ref.numeric)
    pool = (_pool() if cols.records >= PARALLEL_RECORDS and len(names) >= 4 and not _NO_POOL[0]
            else None)
    # the numeric features in one stacked pass, or in one per pool worker
    chunks = 1 if pool is None else min(k, POOL_WORKERS)
    tasks: list[tuple[list[int], list[str]]] = [
        (list(range(c * k // chunks, (c + 1) * k // chunks)), []) for c in range(chunks)] if k else []
    # the categorical features in one task (their codes hold the GIL, so threads gain nothing),
    # except from Arrow's size on, whose hash lookups run in parallel
    cats = list(ref.categorical)
    parts = 1 if pool is None or cols.records < ARROW_CODES_FROM else min(len(cats), POOL_WORKERS)
    tasks += [([], cats[c * len(cats) // parts:(c + 1) * len(cats) // parts])
              for c in range(parts)] if cats else []
    done = list(pool.map(part, tasks)) if pool is not None else [part(t) for t in tasks]
    by_name = {f["name"]: f for fs in done for f in fs}
    raw = [by_name[n] for n in names]
    pvals = [f["ks_pvalue"] if f["type"] == "numeric" else f["chi2_pvalue"] for f in raw]
    adjusted = benjamini_hochberg(np.asarray(pvals, dtype=np.float64)) if raw else np.empty(0)
    thin = cols.records < min_records
    features = {n: _decided(f, adj, policy, min_records)  # thin: every f.n < min
                for n, f, adj in zip(names, raw, adjusted.tolist(), strict=True)}
    predicted = predicted_labels(ref, cols)
    # the predicted classes' codes, looked up once for the prediction's drift, the estimated
    # and the realised performance
    codes = None
    if predicted is not None and ref.classes and not ref.regression:
        # predicted is cols.prediction when the monitor has its codes
        codes = (cols.class_codes if cols.class_codes is not None
                 else category_codes(predicted, ref.class_ref))
    prediction = _prediction_drift(ref, cols, predicted, policy, min_records, codes)
    performance = _performance(ref, cols, predicted, label_accuracy, label_realised or {},
                               codes)
    drifted = any(f.drifted for f in features.values()) or bool(prediction and prediction.drifted)
    return WindowReport(index=index, records=cols.records, start=cols.start, end=cols.end,
                        features=features, prediction=prediction, performance=performance,
                        drifted=drifted, insufficient_data=thin)


def _prediction_drift(ref: ReferenceArrays, cols: WindowColumns, predicted: np.ndarray | None,
                      policy: DriftPolicy, min_records: int,
                      codes: np.ndarray | None = None) -> PredictionDrift | None:
    """``codes``: ``category_codes(predicted, ref.class_ref)`` when the caller has them (used
    when the prediction's reference categories are the classes, in their order)."""
    probs = cols.probabilities
    conf = ent = None
    if probs is not None:
        conf, ent = confidence_and_entropy(probs)
    if ref.prediction_numeric is not None and cols.prediction is not None:
        pred = np.asarray(cols.prediction, dtype=np.float64)
        f = _numeric_drift("prediction", pred, ref.prediction_numeric,
                           approximate=not policy.exact_ks)
        drifted = f.n >= min_records and _output_drifted(
            gate_psi(f.psi, f.psi_corrected, policy), f.ks_pvalue, policy)
        return PredictionDrift(psi=f.psi, drifted=drifted, n=f.n, mean_confidence=conf,
                               mean_entropy=ent, psi_corrected=f.psi_corrected)
    if predicted is None or ref.prediction_categorical is None:
        if probs is None:
            return None
        return PredictionDrift(psi=math.nan, drifted=False, n=0, mean_confidence=conf,
                               mean_entropy=ent)
    cref = ref.prediction_categorical
    if codes is None or cref.categories != ref.classes:
        codes = category_codes(predicted, cref)
    counts = code_counts(codes, len(cref.categories))
    total = int(counts.sum())
    value = psi(cref.proportions, counts)
    corrected = psi_corrected(value, cref.proportions, total, cref.total, bins=cref.bins)
    _, p = chi2_two_sample(cref.counts, counts)
    shares = {c: (float(counts[i]) / total if total else math.nan) for i, c in enumerate(cref.categories)}
    if counts[-1]:
        shares["__other__"] = float(counts[-1]) / total
    drifted = total >= min_records and _output_drifted(gate_psi(value, corrected, policy), p, policy)
    return PredictionDrift(psi=value, drifted=drifted, n=total, class_shares=shares,
                           mean_confidence=conf, mean_entropy=ent, psi_corrected=corrected)


def _output_drifted(value: float, p: float | None, policy: DriftPolicy) -> bool:
    big = math.isfinite(value) and value >= policy.prediction_psi_threshold
    if not policy.require_significance:
        return big
    return big and p is not None and math.isfinite(p) and p < policy.alpha


def _performance(ref: ReferenceArrays, cols: WindowColumns, predicted: np.ndarray | None,
                 label_accuracy: tuple[float | None, int],
                 label_realised: Mapping[str, float],
                 codes: np.ndarray | None = None) -> Performance:
    """``codes``: ``category_codes(predicted, ref.class_ref)`` when the caller has them."""
    out = ref.profile.output
    if ref.regression:
        return _regression_performance(ref, cols, label_accuracy[1], label_realised)
    reference = out.reference_accuracy if out is not None else None
    est = prec = rec = f1 = None
    estimated: dict[str, float] = {}
    probs = cols.probabilities
    k = len(ref.classes)
    if out is not None and out.proba_columns and ref.classes:
        estimated = dict.fromkeys(CLASSIFICATION_METRICS, math.nan)  # estimated_metrics of none
    if out is not None and probs is not None and ref.classes and len(probs):
        ok = finite_rows(probs)
        if ok.any():
            cal = calibrate(probs[ok], ref.classes, out.calibration)
            pred_idx = None
            if cols.prediction is not None:  # then predicted is cols.prediction
                idx = (codes[ok] if codes is not None
                       else category_codes(cols.prediction[ok], ref.class_ref))
                known = (idx >= 0) & (idx < k)
                pred_idx = np.where(known, idx, np.argmax(cal, axis=1))
            chosen_idx = pred_idx if pred_idx is not None else np.argmax(probs[ok], axis=1)
            estimated = estimated_metrics(cal, chosen_idx, ref.binary_positive)
            # estimated_metrics' accuracy is estimated_accuracy's of the model's own decision
            # (without one, estimated_accuracy takes the calibrated argmax), and a binary
            # model's precision, recall and F1 are binary_confusion_estimate's of the chosen
            # classes (the positive column is binary_positive = positive_index): the same
            # sums of the same (finite) calibrated rows, so the same floats (tested)
            est = estimated["accuracy"] if pred_idx is not None else estimated_accuracy(cal)
            if ref.positive_index is not None and k == 2:
                prec, rec, f1 = estimated["precision"], estimated["recall"], estimated["f1"]
    accuracy, labels = label_accuracy
    realised: dict[str, float] = {}
    if ref.classes:
        realised = {**realised_metrics(np.empty(0), np.empty(0), k,
                                       np.empty((0, k)) if out and out.proba_columns else None),
                    **label_realised}
    if cols.targets is not None and predicted is not None:
        acc, n = realised_accuracy(predicted, cols.targets)
        if n:
            accuracy, labels = acc, n
            if ref.classes:
                realised = realised_metrics(
                    codes if codes is not None else category_codes(predicted, ref.class_ref),
                    category_codes(cols.targets, ref.class_ref), k,
                    probs if out is not None and out.proba_columns else None,
                    ref.binary_positive)
    return Performance(estimated_accuracy=est, accuracy=accuracy, labels=labels,
                       reference_accuracy=reference, estimated_precision=prec,
                       estimated_recall=rec, estimated_f1=f1, estimated=estimated,
                       realised=realised)


def _regression_performance(ref: ReferenceArrays, cols: WindowColumns, labels: int,
                            label_realised: Mapping[str, float]) -> Performance:
    """DLE estimates from the window's inputs; realised errors from its labels (``analyze``) or
    from the joined labels of the live path."""
    estimated: dict[str, float] = {}
    model = ref.loss_model
    if model is not None:
        estimated = {"mae": math.nan, "rmse": math.nan}
        if cols.prediction is not None and cols.records:
            x = loss_matrix(model.inputs, ref.loss_refs, cols.features, cols.prediction)
            estimated = estimate_losses(model, x)
    realised = {**realised_regression(np.empty(0), np.empty(0)), **label_realised}
    if cols.targets is not None and cols.prediction is not None:
        pred = np.asarray(cols.prediction, dtype=np.float64)
        y = np.asarray(cols.targets, dtype=np.float64)
        n = int((np.isfinite(pred) & np.isfinite(y)).sum())
        if n:
            realised, labels = realised_regression(pred, y), n
    return Performance(estimated_accuracy=None, accuracy=None, labels=labels,
                       estimated=estimated, realised=realised)


__all__ = ["ReferenceArrays", "WindowColumns", "category_codes",
           "code_counts", "compute_window", "loss_inputs", "loss_matrix", "loss_refs",
           "predicted_labels", "realised_accuracy", "without_pool"]
