"""The monitor: one per (model, version, endpoint); windows, detectors and snapshots.

A monitor owns a baseline profile and the detectors built from it. Collectors hand it
:class:`~driftline.engine.records.RecordBatch` objects; it cuts them into windows (by record count and by
age, whichever comes first), runs every detector on each closed window in vectorised numpy, and
keeps cumulative counters (quantile-rank histograms, category counts, confidence histogram,
labels, ADWIN detections). ``snapshot()`` returns an immutable view for exporters and is safe to
call from another thread.
"""

from __future__ import annotations

import bisect
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from driftline.catalogue import CONFIDENCE_BUCKETS, QUANTILE_RANK_BUCKETS
from driftline.detectors.change import ChangeDetector
from driftline.detectors.classification import realised_metrics
from driftline.detectors.regression import realised_regression
from driftline.engine import window_native
from driftline.engine.derived import DerivedRef, EmbeddingPolicy
from driftline.engine.kernels import RankReference, rank_update
from driftline.engine.multivariate import MultivariateRef
from driftline.engine.records import RecordBatch
from driftline.engine.snapshot import Histogram, ModelSnapshot, WindowReport
from driftline.engine.window_stats import (
    ReferenceArrays,
    WindowColumns,
    category_codes,
    code_counts,
    compute_window,
    predicted_labels,
)
from driftline.profile.format import OTHER, BaselineProfile

#: Windows (and features) with fewer valid records make no drift decision; measured by
#: ``python -m benchmarks detection`` (null flag rate ≤ 1 % from here up, mixed features).
DEFAULT_MIN_RECORDS = 200
#: Realised accuracy from joined labels covers the last ``min(window.records, this)`` labels.
LABEL_WINDOW_MAX = 100_000
#: Batches of at least this many records get their categorical features' (and predicted
#: classes') codes looked up once, as they arrive (:meth:`Monitor._with_codes`, into
#: :attr:`RecordBatch.codes <driftline.engine.records.RecordBatch.codes>`), for both the
#: cumulative counters and the window close, which otherwise each looked up every value
#: (≈ 100 ns a value, ≈ 0.6 ms per 1000 records of the benchmark's 5 categorical features
#: and classes). Below it a lookup's fixed cost (≈ 6 µs a call) would exceed what it saves
#: (measured: 154 ns a value at 64 values, 6 µs at 1), and both look the values up in their
#: own, larger blocks as before. A monitor without counters (``analyze``'s) shares nothing
#: and looks them up at the close (or takes its reader's), as before.
CODES_FROM = 64
#: The key of the predicted classes' codes (``category_codes(prediction, class_ref)`` of a
#: batch with a prediction column) in :attr:`RecordBatch.codes`: not a feature name (a
#: window's codes are its features' only), so it never reaches a report.
CLASS_CODES = "\x00predicted classes"
#: Records observed before the cumulative counters are brought up to date (snapshot() always
#: brings them up to date first; the sidecar's tick does every second, and a scrape of a ticked
#: monitor serves the last tick's count instead of counting: see scrape_snapshot).
PENDING_RECORDS = 4096


@dataclass(frozen=True)
class WindowPolicy:
    """When a window closes: after ``records`` records or ``max_age`` seconds, whichever first.

    ``max_age`` None means count-only windows (offline analysis). A window closed by age with
    fewer than ``min_records`` records is still reported, with its size and statistics, so thin
    traffic is visible rather than hidden, but it makes no drift decision ("insufficient data"):
    below a few hundred records the tests and the PSI gate cannot hold their error rates
    (docs/statistics.md, "Size-aware decision").
    """

    records: int = 1000
    max_age: float | None = 300.0
    min_records: int = DEFAULT_MIN_RECORDS


@dataclass(frozen=True)
class DriftPolicy:
    """The drift decision (docs/statistics.md, "Statistics and defaults").

    A feature is drifted when its effect size passes ``psi_threshold`` AND its test p-value
    (KS for numeric, chi-squared for categorical), after Benjamini–Hochberg correction across the
    model's features in that window, is below ``alpha``. The effect size is the bias-corrected
    PSI (PSI minus its expectation without drift at the window's and the reference's size), so the
    threshold means the same at every window size; ``correct_psi=False`` gates on the raw PSI.
    ``require_significance=False`` decides on the effect size alone. A window is drifted when any
    feature (or the prediction) drifted.
    """

    psi_threshold: float = 0.1
    correct_psi: bool = True
    alpha: float = 0.05
    require_significance: bool = True
    prediction_psi_threshold: float = 0.1
    #: per-record change detection on every numeric feature too (signal ``feature:<name>``)
    adwin_features: bool = False
    #: KS p-values exactly ``scipy.stats.ks_2samp``'s at every size (the default, sidecar and
    #: ``analyze`` alike, so their results stay bit-identical). Off: where scipy's exact lattice
    #: count is dear (≈ 2 ms for 1000 values against 5000, paid once per lattice step of D:
    #: the counts are kept, ``detectors.ks._exact_lattice``; a reference above 10 000 values
    #: never needs it) a continuity-corrected asymptotic value with a tested bound is used
    #: (docs/statistics.md, "The fast KS p-value").
    exact_ks: bool = True


class ChangeStream:
    """A :class:`ChangeDetector` on one per-record stream, plus when its latest change began.

    Values are buffered and fed to the detector ``FEED`` at a time, or whatever is buffered at
    :meth:`flush` (the monitor flushes on every tick and snapshot, so exporters never see a
    detection late). Why: on the numpy path a detector call costs ≈ 0.3–0.4 ms whatever its size
    up to a few values and ≈ 4 µs a value in batches, and labels often come one per
    ``/feedback`` request (fed one call each they cost ≈ 0.4 ms of CPU apiece); the compiled
    core (``change_native``) costs ≈ 0.35 µs a value, ≈ 0.5 µs fed one at a time, so there the
    buffer only saves the per-call overhead. The detector sees the same values in the
    same order either way, so its detections, change points and state are the same, bit for
    bit (``ChangeDetector``: a batch = the values one at a time).

    The detector reports the change point as an index; to give it a time, the start index and
    arrival time of the last ``TIMES_KEPT`` batches passed to :meth:`update` are kept (bounded
    memory). A change that began before the oldest kept batch is dated to that batch."""

    TIMES_KEPT = 4096
    FEED = 1024

    def __init__(self) -> None:
        self.detector = ChangeDetector()
        self._firsts: list[int] = []
        self._times: list[float] = []
        self._parts: list[np.ndarray] = []
        self._buffered = 0
        self._seen = 0  # values passed in: fed to the detector or buffered
        self.began: float | None = None

    def update(self, values: np.ndarray, now: float | None) -> None:
        if now is not None:
            self._firsts.append(self._seen)
            self._times.append(now)
            if len(self._firsts) > 2 * self.TIMES_KEPT:
                del self._firsts[:self.TIMES_KEPT], self._times[:self.TIMES_KEPT]
        arr = np.asarray(values, dtype=np.float64).ravel()
        self._parts.append(arr)
        self._buffered += arr.size
        self._seen += arr.size
        if self._buffered >= self.FEED:
            self.flush()

    @property
    def buffered(self) -> int:
        """Values passed in and not yet fed to the detector."""
        return self._buffered

    def flush(self) -> None:
        """Feed the detector whatever is buffered."""
        if not self._parts:
            return
        values = self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
        self._parts = []
        self._buffered = 0
        det = self.detector
        if det.update(values) and self._times:
            cp = det.change_point
            assert cp is not None
            i = max(bisect.bisect_right(self._firsts, cp) - 1, 0)
            self.began = self._times[i]


# --- the monitor -------------------------------------------------------------------------------

class Monitor:
    """Windows, detectors and cumulative counters of one model version behind one endpoint.

    ``clock`` gives arrival time for age-based windows and for window start/end when records
    carry no timestamps; ``clock=None`` means offline analysis: windows close by count (or by
    :meth:`flush`) only, and a window without record timestamps has start/end None.
    ``streams=False`` skips the per-record ADWIN detectors (confidence, features), which feed only
    the ``driftline_change_detections_total`` counter: offline analysis does not report them and
    they are the one per-record Python loop. The label error stream always runs.
    ``cumulative=False`` skips the cumulative counters only :meth:`snapshot` shows (quantile
    rank histograms, category and class counts, confidence buckets): ``analyze`` reports
    windows, never a snapshot, and those counters cost it ≈ 9 % of its time.
    ``first_window`` numbers the first window (``analyze`` computing a later part of the
    windows in another process numbers them as one monitor would).

    >>> from driftline.profile.format import BaselineProfile, Columns, NumericFeature
    >>> f = NumericFeature("x", (0.0,), (0.5, 0.5), (-1.0, 1.0), True, 2, 0.0, -1.0, 1.0, 0.0, 1.0)
    >>> prof = BaselineProfile("m", "1", "", 2, {"x": f}, Columns(), None)
    >>> mon = Monitor(prof, window=WindowPolicy(records=4, max_age=None), clock=None)
    >>> [r.records for r in mon.observe(RecordBatch({"x": np.array([-2.0, -1, 1, 2, 3])}))]
    [4]
    >>> mon.flush().records
    1
    """

    def __init__(self, profile: BaselineProfile, *, endpoint: str = "default",
                 window: WindowPolicy = WindowPolicy(), drift: DriftPolicy = DriftPolicy(),
                 clock: Callable[[], float] | None = time.time, streams: bool = True,
                 cumulative: bool = True,
                 embedding: EmbeddingPolicy = EmbeddingPolicy(),  # noqa: B008
                 on_close: Callable[[WindowColumns, WindowReport], WindowReport] | None = None,
                 first_window: int = 0) -> None:
        if window.records < 1:
            raise ValueError(f"window.records must be >= 1, got {window.records}")
        if window.max_age is not None and not window.max_age > 0:
            raise ValueError(f"window.max_age must be > 0 seconds, got {window.max_age}")
        self.profile = profile
        self.endpoint = endpoint
        self.window = window
        self.drift = drift
        self.clock = clock
        self._ref = ReferenceArrays(profile)
        self._mv = MultivariateRef.of(profile)
        # hashed once here, never under the lock on a snapshot (profile.id caches it)
        self._baseline_id = profile.id
        self._derived = DerivedRef.of(profile, embedding)
        #: offline extras computed from a closed window's columns (analyze's domain classifier)
        self._on_close = on_close
        self._lock = threading.Lock()
        # open window
        self._chunks: list[RecordBatch] = []
        self._buffered = 0
        self._opened: float | None = None
        self._cumulative = cumulative
        self._pending: list[RecordBatch] = []
        self._pending_n = 0
        # cumulative state
        self._windows = first_window  # the index of the next window (offline: a later part)
        self._last: WindowReport | None = None
        self._last_end: float | None = None
        self._by_source: dict[str, int] = {}
        self._sampled = 0
        nb = len(QUANTILE_RANK_BUCKETS) + 1
        self._qr = {n: np.zeros(nb, dtype=np.int64) for n in self._ref.numeric}
        self._qr_sum = dict.fromkeys(self._ref.numeric, 0.0)
        bounds = np.asarray(QUANTILE_RANK_BUCKETS)
        # distinct reference values and their rank jumps, and occurrences so far of each tied
        # value: ties are spread over their jump by occurrence index (detectors.quantile_rank);
        # only the cumulative counters use them (analyze's monitor has none: at 400 features
        # of 20k-value summaries they are ≈ 36 MB)
        self._rank_ref = ({n: RankReference.build(r.summary, bounds)
                           for n, r in self._ref.numeric.items()} if cumulative else {})
        self._rank_seen = {n: rr.new_seen() for n, rr in self._rank_ref.items()}
        self._cats = {n: np.zeros(len(r.categories) + 1, dtype=np.int64)
                      for n, r in self._ref.categorical.items()}
        self._classes = np.zeros(len(self._ref.classes) + 1, dtype=np.int64)
        has_proba = profile.output is not None and bool(profile.output.proba_columns)
        self._conf = np.zeros(len(CONFIDENCE_BUCKETS) + 1, dtype=np.int64) if has_proba else None
        self._conf_sum = 0.0
        self._labels = {"true": 0, "false": 0}
        self._change: dict[str, ChangeStream] = {}
        if has_proba and streams:
            self._change["confidence"] = ChangeStream()
        if drift.adwin_features and streams:
            for n in self._ref.numeric:
                self._change[f"feature:{n}"] = ChangeStream()
        self._change["error"] = ChangeStream()
        cap = min(window.records, LABEL_WINDOW_MAX)
        self._correct = np.zeros(cap, dtype=bool)
        # the joined (prediction, label) pairs behind the realised metrics: class codes of a
        # classifier, values of a regressor, in the same ring as _correct
        self._regression = self._ref.regression
        ring_type = np.float64 if self._regression else np.int64
        self._ring_pred = np.zeros(cap, dtype=ring_type)
        self._ring_label = np.zeros(cap, dtype=ring_type)
        # a classifier's probabilities of the joined records (NaN rows where the stored record
        # had none), for the realised ROC AUC: cap × classes floats
        self._ring_scores = (np.full((cap, len(self._ref.classes)), np.nan)
                             if has_proba and not self._regression and self._ref.classes
                             else None)
        self._correct_pos = 0
        self._correct_filled = 0
        self._accuracy: float | None = None
        self._estimated: float | None = None
        self._estimated_perf: dict[str, float] = {}
        self._window_realised: dict[str, float] = {}
        self._snapshot: ModelSnapshot | None = None
        #: the last snapshot built with every record counted (what scrape_snapshot serves)
        self._counted: ModelSnapshot | None = None
        self._ticked = False  # a worker ticks this monitor (the sidecar's does, every second)

    # --- intake ------------------------------------------------------------------------------

    def observe(self, batch: RecordBatch, *, source: str = "file",
                now: float | None = None) -> list[WindowReport]:
        """Add a batch; return the windows it closed (by count, or by age before it arrived)."""
        n = len(batch)
        if self._derived is not None and n:
            batch = self._derived.derive(batch)  # pure: outside the lock
        if n >= CODES_FROM and self._cumulative:  # pure too: the counters share them
            batch = self._with_codes(batch)
        with self._lock:
            now = self._now(now)
            reports = self._close_if_old(now)
            if n == 0:
                return reports
            self._snapshot = None
            self._by_source[source] = self._by_source.get(source, 0) + n
            self._sampled += n
            # Counters are updated in blocks: per-batch numpy overhead would dominate for the
            # sidecar's small batches. snapshot() counts whatever is pending first.
            if self._cumulative:
                self._pending.append(batch)
                self._pending_n += n
                if self._pending_n >= PENDING_RECORDS:
                    self._count_pending()
            pos = 0
            while pos < n:
                if self._buffered == 0:
                    self._opened = now
                take = min(self.window.records - self._buffered, n - pos)
                self._chunks.append(batch.slice(pos, pos + take) if take < n else batch)
                self._buffered += take
                pos += take
                if self._buffered >= self.window.records:
                    reports.append(self._close(now))
            return reports

    def observe_labels(self, predicted: np.ndarray, labels: np.ndarray,
                       scores: np.ndarray | None = None) -> None:
        """Joined predictions and labels: realised metrics over the last ``window.records``
        labels, and ADWIN on a classifier's error stream (signal ``error``).

        A classifier's values are canonical labels (None for missing); a regressor's are
        numbers (NaN for missing). Pairs with a missing side count as received, not measured.
        ``scores`` are a classifier's stored ``(n, classes)`` probabilities of the same records
        (NaN rows where there were none): with them the realised metrics include ROC AUC.
        """
        if self._regression:
            pred = np.asarray(predicted, dtype=np.float64)
            lab = np.asarray(labels, dtype=np.float64)
            ok = np.isfinite(pred) & np.isfinite(lab)
            p_ring, l_ring = pred[ok], lab[ok]
            right = np.zeros(len(p_ring), dtype=bool)
        else:
            pred = np.asarray(predicted, dtype=object)
            lab = np.asarray(labels, dtype=object)
            ok = (pred != None) & (lab != None)  # noqa: E711 - elementwise on object arrays
            right = pred[ok] == lab[ok]
            p_ring = category_codes(pred[ok], self._ref.class_ref)
            l_ring = category_codes(lab[ok], self._ref.class_ref)
        s_ring = None
        if self._ring_scores is not None:
            s_ring = np.full((len(p_ring), self._ring_scores.shape[1]), np.nan)
            if scores is not None and np.shape(scores) == (len(pred), s_ring.shape[1]):
                s_ring = np.asarray(scores, dtype=np.float64)[ok]
        with self._lock:
            self._snapshot = None
            self._labels["true"] += len(pred)
            m = len(right)
            cap = len(self._correct)
            if m >= cap:
                self._correct[:] = right[-cap:]
                self._ring_pred[:] = p_ring[-cap:]
                self._ring_label[:] = l_ring[-cap:]
                if self._ring_scores is not None and s_ring is not None:
                    self._ring_scores[:] = s_ring[-cap:]
                self._correct_pos = 0
                self._correct_filled = cap
            elif m:
                idx = (self._correct_pos + np.arange(m)) % cap
                self._correct[idx] = right
                self._ring_pred[idx] = p_ring
                self._ring_label[idx] = l_ring
                if self._ring_scores is not None and s_ring is not None:
                    self._ring_scores[idx] = s_ring
                self._correct_pos = int((self._correct_pos + m) % cap)
                self._correct_filled = min(cap, self._correct_filled + m)
            if self._correct_filled and not self._regression:
                self._accuracy = float(self._correct[: self._correct_filled].mean())
            if not self._regression:
                self._change["error"].update((~right).astype(np.float64), self._now(None))

    def _label_realised(self) -> dict[str, float]:
        """Realised metrics of the joined labels in the ring; ROC AUC from the probabilities
        stored with the predictions (over the joined rows that had them)."""
        n = self._correct_filled
        if not n:
            return {}
        p, y = self._ring_pred[:n], self._ring_label[:n]
        if self._regression:
            return realised_regression(p, y)
        scores = None if self._ring_scores is None else self._ring_scores[:n]
        return realised_metrics(p, y, len(self._ref.classes), scores, self._ref.binary_positive)

    def count_unmatched_labels(self, n: int) -> None:
        """Labels for which no stored prediction was found (``matched="false"``)."""
        with self._lock:
            self._snapshot = None
            self._labels["false"] += int(n)

    def tick(self, now: float | None = None) -> list[WindowReport]:
        """Close the open window if it is older than ``window.max_age``, and count the records
        still pending in the cumulative counters.

        The sidecar's worker ticks every second, so a scrape (every 15 s or so) finds at most
        a second's records pending instead of up to :data:`PENDING_RECORDS`: counting them is
        ingest work, done here on the worker rather than inside a scrape's snapshot."""
        with self._lock:
            reports = self._close_if_old(self._now(now))
            self._count_pending()
            self._ticked = True
            if self._snapshot is None:  # published here, so a scrape need not count or build
                self._snapshot = self._build_snapshot()
            self._counted = self._snapshot
            return reports

    def flush(self) -> WindowReport | None:
        """Close the open window whatever its size (shutdown, end of file, time boundary)."""
        with self._lock:
            # until the next tick (none after a shutdown), scrapes count what is pending again
            self._ticked = False
            if self._buffered == 0:
                return None
            return self._close(self._now(None))

    # --- read side -----------------------------------------------------------------------------

    def snapshot(self) -> ModelSnapshot:
        """An immutable view for exporters; safe to call from any thread."""
        with self._lock:
            self._count_pending()
            if self._snapshot is None:
                self._snapshot = self._build_snapshot()
            self._counted = self._snapshot
            return self._snapshot

    def scrape_snapshot(self) -> ModelSnapshot:
        """What a scrape serves: :meth:`snapshot`, except that once the monitor is ticked it
        never counts pending records. Counting them is ingest work whose cost grows with the
        features (≈ 0.6 ms each), and a scrape doing it under the lock made the detectors wait
        (251 ms at 400 features). With records pending, a ticked monitor returns the snapshot
        of its last count instead: the state as of the last tick, at most one tick interval
        old (1 s in the sidecar), each served snapshot consistent in itself; the same while a
        change stream holds values not yet fed to its detector (labels since the tick), whose
        feeding is also the tick's work. With nothing pending it is exactly :meth:`snapshot`;
        the lock is then held only to build one, which costs what the model's size does, not
        the records'. A monitor nobody ticks (library use without the worker) counts as
        :meth:`snapshot` does, so its readers see every record."""
        with self._lock:
            if self._ticked and self._counted is not None and (
                    self._pending or any(c.buffered for c in self._change.values())):
                return self._counted
        return self.snapshot()

    @property
    def buffered(self) -> int:
        """Records in the open window."""
        return self._buffered

    # --- internals -----------------------------------------------------------------------------

    def _now(self, now: float | None) -> float | None:
        if now is not None:
            return now
        return self.clock() if self.clock is not None else None

    def _close_if_old(self, now: float | None) -> list[WindowReport]:
        age = self.window.max_age
        if (age is None or now is None or self._buffered == 0 or self._opened is None
                or now - self._opened < age):
            return []
        return [self._close(now)]

    def _with_codes(self, batch: RecordBatch) -> RecordBatch:
        """The batch with its :attr:`~RecordBatch.codes` of each categorical feature it has
        and of its prediction column's classes (:data:`CLASS_CODES`): what :meth:`_count`
        and the window close would otherwise each look up. Codes are per value, so a
        block's codes are its batches' one after another (:func:`_concat`)."""
        codes = {name: category_codes(col, cref) for name, cref in self._ref.categorical.items()
                 if name not in batch.codes and (col := batch.features.get(name)) is not None}
        if self._ref.classes and batch.prediction is not None:
            codes[CLASS_CODES] = category_codes(batch.prediction, self._ref.class_ref)
        if not codes:
            return batch
        return dataclasses.replace(batch, codes={**batch.codes, **codes})

    def _count(self, batch: RecordBatch) -> None:
        names = [name for name, ref in self._ref.numeric.items()
                 if len(ref.summary) and batch.features.get(name) is not None]
        columns = [np.asarray(batch.features[name], dtype=np.float64) for name in names]
        ranks = window_native.rank_kernel()  # the switch read once a block, not per feature
        for name, values, s in zip(names, columns, _sorted_finite(columns), strict=True):
            # reference quantile ranks (== detectors.quantile_rank with the running occurrence
            # counts) in one pass, see kernels.rank_update
            counts, rank_sum = rank_update(self._rank_ref[name], s, self._rank_seen[name],
                                           kernel=ranks)
            self._qr[name] += counts
            self._qr_sum[name] += rank_sum
            key = f"feature:{name}"
            if key in self._change:
                self._change[key].update(values, self._now(None))
        known = batch.codes  # the codes its batches had (_with_codes, or their reader's)
        for name, cref in self._ref.categorical.items():
            col = batch.features.get(name)
            if col is not None:
                got = known.get(name)
                self._cats[name] += code_counts(got if got is not None
                                                else category_codes(col, cref),
                                                len(cref.categories))
        if self._ref.classes:
            class_codes = known.get(CLASS_CODES)  # then the prediction column is there
            if class_codes is None:
                cols = WindowColumns(len(batch), {}, batch.prediction, batch.probabilities, None,
                                     None, None)
                predicted = predicted_labels(self._ref, cols)
                if predicted is not None:
                    class_codes = category_codes(predicted, self._ref.class_ref)
            if class_codes is not None:
                self._classes += code_counts(class_codes, len(self._ref.classes))
        if self._conf is not None and batch.probabilities is not None:
            probs = batch.probabilities
            with np.errstate(invalid="ignore"):
                conf = np.max(probs, axis=1) if probs.ndim == 2 and probs.shape[1] else \
                    np.full(len(probs), np.nan)
            ok = conf[np.isfinite(conf)]
            self._conf += np.bincount(np.searchsorted(np.asarray(CONFIDENCE_BUCKETS), ok,
                                                      side="left"),
                                      minlength=len(CONFIDENCE_BUCKETS) + 1)
            self._conf_sum += float(ok.sum())
            if "confidence" in self._change:
                self._change["confidence"].update(conf, self._now(None))

    def _columns(self, now: float | None) -> WindowColumns:
        n = self._buffered
        merged = _concat(self._chunks, ids=False)
        features: dict[str, np.ndarray] = {}
        for name in self.profile.features:
            col = merged.features.get(name)
            if col is None:
                col = (np.full(n, np.nan) if name in self._ref.numeric
                       else np.full(n, None, dtype=object))
            elif name in self._ref.numeric and col.dtype != np.float64:
                col = col.astype(np.float64)
            features[name] = col
        timestamps = merged.timestamps
        start: float | None
        end: float | None
        if timestamps is not None and np.isfinite(timestamps).any():
            start, end = float(np.nanmin(timestamps)), float(np.nanmax(timestamps))
        else:  # arrival times; None in offline analysis without record timestamps
            start, end = self._opened, (now if self._opened is not None else None)
        return WindowColumns(n, features, merged.prediction, merged.probabilities,
                             merged.targets, start, end,
                             {k: v for k, v in merged.codes.items() if k in features},
                             class_codes=merged.codes.get(CLASS_CODES))

    def _count_pending(self) -> None:
        if self._pending:
            batch = _concat(self._pending, ids=False)
            self._pending = []
            self._pending_n = 0
            self._count(batch)
        for stream in self._change.values():
            stream.flush()

    def _close(self, now: float | None) -> WindowReport:
        cols = self._columns(now)
        label_acc = (self._accuracy, self._correct_filled)
        report = compute_window(self._ref, cols, index=self._windows, policy=self.drift,
                                min_records=self.window.min_records, label_accuracy=label_acc,
                                label_realised=self._label_realised())
        thin = cols.records < self.window.min_records
        if self._mv is not None:
            mv = self._mv.window(cols.features, thin=thin, codes=cols.codes)
            report = dataclasses.replace(report, multivariate=mv,
                                         drifted=report.drifted or mv.drifted)
        if self._derived is not None and self._derived.embeddings:
            embs = self._derived.window(self._chunks, index=self._windows, thin=thin)
            report = dataclasses.replace(report, embeddings=embs, drifted=report.drifted or any(
                e.drifted for e in embs.values()))
        if self._on_close is not None:
            report = self._on_close(cols, report)
        self._chunks = []
        self._buffered = 0
        self._opened = None
        self._windows += 1
        self._last = report
        self._last_end = report.end if report.end is not None else now
        if report.performance.estimated_accuracy is not None:
            self._estimated = report.performance.estimated_accuracy
        if any(v == v for v in report.performance.estimated.values()):  # some value not NaN
            self._estimated_perf = report.performance.estimated
        if cols.targets is not None:
            self._window_realised = report.performance.realised
        if cols.targets is not None and report.performance.accuracy is not None:
            self._accuracy = report.performance.accuracy
        self._snapshot = None
        return report

    def _build_snapshot(self) -> ModelSnapshot:
        # under the monitor lock: numpy → Python in C (tolist), one pass per counter
        qr = {}
        for n, c in self._qr.items():
            counts = c.tolist()
            qr[n] = Histogram(QUANTILE_RANK_BUCKETS, tuple(counts), self._qr_sum[n], sum(counts))
        cats = {}
        for n, arr in self._cats.items():
            cat_counts = arr.tolist()
            cats[n] = {**dict(zip(self._ref.categorical[n].categories, cat_counts,
                                  strict=False)), OTHER: cat_counts[-1]}
        ref_cats = {n: {**dict(zip(r.categories, r.proportions.tolist(), strict=False)),
                        OTHER: float(r.proportions[-1])}
                    for n, r in self._ref.categorical.items()}
        conf = None
        if self._conf is not None:
            conf = Histogram(CONFIDENCE_BUCKETS, tuple(int(x) for x in self._conf),
                             self._conf_sum, int(self._conf.sum()))
        classes = {c: int(v) for c, v in zip(self._ref.classes, self._classes, strict=False)}
        if self._ref.classes:
            classes[OTHER] = int(self._classes[-1])
        out = self.profile.output
        return ModelSnapshot(
            model_name=self.profile.model_name, model_version=self.profile.model_version,
            endpoint=self.endpoint, baseline_id=self._baseline_id, last_window=self._last,
            baseline_source=self.profile.source_label,
            windows_total=self._windows, records_by_source=dict(self._by_source),
            records_sampled=self._sampled, quantile_rank=qr, categories=cats,
            reference_categories=ref_cats, prediction_confidence=conf,
            prediction_classes=classes, labels=dict(self._labels),
            change_detections={k: c.detector.detections for k, c in self._change.items()},
            change_points={k: c.began for k, c in self._change.items() if c.began is not None},
            reference_accuracy=out.reference_accuracy if out is not None else None,
            accuracy=self._accuracy, estimated_accuracy=self._estimated,
            last_window_end=self._last_end, estimated_performance=dict(self._estimated_perf),
            performance=self._label_realised() or dict(self._window_realised),
            reference_performance=dict(out.reference_performance) if out is not None else {},
        )


def _sorted_finite(columns: list[np.ndarray]) -> list[np.ndarray]:
    """Each float64 column's finite values, sorted (what :meth:`Monitor._count` ranks).

    Columns of one length (a block's) are stacked and sorted in one ``np.sort(axis=1)``: one
    call instead of three per feature (finite mask, selection, sort). Measured (CPU, min of 40,
    ABBA, fresh values), 20 features of 100 values: 30 → 15 µs a block; of 1000: 91 → 65; of
    4096: 385 → 329. A column holding a missing or infinite value is sorted alone, as before.
    The same values in the same order (equal floats, ``-0.0`` and ``0.0``, may lie either way
    round: no result depends on that)."""
    if len(columns) < 2 or any(c.ndim != 1 or len(c) != len(columns[0]) for c in columns):
        return [np.sort(c[np.isfinite(c)]) for c in columns]
    stack = np.stack(columns)
    finite = np.isfinite(stack)
    whole = finite.all(axis=1)
    if whole.all():
        stack.sort(axis=1)
        return list(stack)
    done = stack[whole]
    done.sort(axis=1)
    rows = iter(list(done))
    return [next(rows) if ok else np.sort(c[finite[i]])
            for i, (c, ok) in enumerate(zip(columns, whole.tolist(), strict=True))]


def _concat(chunks: list[RecordBatch], *, ids: bool = True) -> RecordBatch:
    """One batch from many; a column absent from some chunks is missing (NaN/None) there.
    ``ids=False`` leaves the ids out (the window close and the counters never read them).

    Called on every window close and count block (≈ 30 columns of a few chunks each), so
    the common case (every chunk has every column) is a plain ``np.concatenate`` per column:
    the per-column checks cost more than the copies (232 → 110 µs for a window of two
    500-record chunks of the benchmark's 25 features)."""
    if len(chunks) == 1:
        return chunks[0]
    first = chunks[0].features
    if all(c.features.keys() == first.keys() for c in chunks):
        names: list[str] | dict[str, None] = list(first)
    else:
        names = dict.fromkeys(k for c in chunks for k in c.features)
    features = {}
    for name in names:
        col = _cat([c.features.get(name) for c in chunks], chunks)
        assert col is not None
        features[name] = col
    # codes only of the features every chunk has them for (else the window looks them up)
    codes = {name: np.concatenate([c.codes[name] for c in chunks])
             for name in chunks[0].codes if all(name in c.codes for c in chunks)}
    return RecordBatch(
        features, _cat([c.prediction for c in chunks], chunks),
        _cat([c.probabilities for c in chunks], chunks),
        _cat([c.ids for c in chunks], chunks) if ids else None,
        _cat([c.timestamps for c in chunks], chunks), _cat([c.targets for c in chunks], chunks),
        n=sum(len(c) for c in chunks), codes=codes,
    )


def _cat(parts: list[np.ndarray | None], chunks: list[RecordBatch]) -> np.ndarray | None:
    """The parts one after another; a missing part (None) is a missing block of its chunk's
    length; None when every part is."""
    for p in parts:
        if p is None:
            break
    else:
        return np.concatenate(parts)  # type: ignore[arg-type]
    if all(p is None for p in parts):
        return None
    return np.concatenate([p if p is not None else _missing_like(parts, len(c))
                           for p, c in zip(parts, chunks, strict=True)])


def _missing_like(parts: list[np.ndarray | None], n: int) -> np.ndarray:
    """A missing block shaped like the non-missing parts (NaN for floats, None for objects)."""
    ref = next(p for p in parts if p is not None)
    if ref.dtype == object:
        return np.full((n, *ref.shape[1:]), None, dtype=object)
    return np.full((n, *ref.shape[1:]), np.nan)

