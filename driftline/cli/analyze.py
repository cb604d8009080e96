"""`driftline analyze`: a data file against a baseline, window by window (JSON, table or HTML)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import IO, Any

from driftline.cli.argtypes import non_negative_float, open_unit_float, positive_int
from driftline.cli.options import add_progress
from driftline.io.atomic import atomic_write

#: Report format by --output suffix (no suffix: JSON).
SUFFIX_FORMATS = {"": "json", ".json": "json", ".html": "html", ".htm": "html", ".txt": "table"}
#: Window size when only --window-duration cuts windows.
UNLIMITED = 2**62


def register(sub: Any) -> None:
    p = sub.add_parser(
        "analyze", help="analyse a data file against a baseline, window by window",
        description="Cut the data into windows (by record count, and by record time with "
        "--window-duration) and report drift per feature, prediction drift and estimated vs "
        "realised accuracy for each window.",
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="files, directories or quoted globs")
    p.add_argument("--baseline", required=True, metavar="FILE", help="baseline profile")
    p.add_argument("--window-size", type=positive_int, metavar="N",
                   help="records per window (default 1000; no count limit with --window-duration)")
    p.add_argument("--timestamp", metavar="COL",
                   help="event time column (default: the one named at build time)")
    p.add_argument("--window-duration", metavar="DURATION",
                   help="also cut windows at multiples of this record-time span, e.g. 1h, 15m")
    p.add_argument("--engine", choices=("local", "spark"), default="local",
                   help="local: stream the files here; spark: DATA is a table name or a path "
                   "Spark reads, windows computed on the cluster (needs driftline[spark])")
    p.add_argument("--window-column", metavar="COL",
                   help="with --engine spark: one window per value of this column (a window id)")
    p.add_argument("--format", choices=("json", "table", "html"),
                   help="default: from --output's suffix, else table on a terminal, else json")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")
    p.add_argument("--fail-on-drift", action="store_true",
                   help="exit 1 when any window drifted or has a data-quality failure (a "
                   "feature entirely missing, target labels the reference never had)")
    p.add_argument("--allow-data-quality", action="store_true",
                   help="with --fail-on-drift: report data-quality failures but do not fail on "
                   "them")
    p.add_argument("--psi-threshold", type=non_negative_float,
                   help="PSI at or above which a feature may drift (0.1)")
    p.add_argument("--alpha", type=open_unit_float, help="significance after Benjamini-Hochberg (0.05)")
    p.add_argument("--domain-classifier", action="store_true",
                   help="also report the cross-validated AUC of a classifier telling reference "
                   "rows from window rows (multivariate.domain_classifier_auc; about a second "
                   "per window; needs scikit-learn: pip install 'driftline[analyze]')")
    p.add_argument("--min-records", type=int, metavar="N",
                   help="windows (and features) with fewer valid records report 'insufficient "
                   "data' instead of a drift decision (default 200)")
    p.add_argument("--raw-psi", action="store_true",
                   help="gate on the raw PSI instead of the bias-corrected one")
    p.add_argument("--ks-pvalue", choices=("exact", "fast"), default="exact",
                   help="exact: KS p-values equal to scipy.stats.ks_2samp at every size "
                   "(default); fast: the tested approximation where the exact count is dear, "
                   "as a sidecar with drift.exact_ks: false (error bound in docs/statistics.md)")
    p.add_argument("--processes", type=positive_int, metavar="N",
                   help="processes computing the windows, each a part of them (default: 2 on 2+ "
                   "cores with half a core or more idle by the load average, for Parquet data of 10 "
                   "million values or more and at most 32 columns; 1: this process only); the "
                   "report is the same")
    add_progress(p)
    p.set_defaults(func=_run)


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if args.output:
        suffix = PurePosixPath(str(args.output)).suffix.lower()
        fmt = SUFFIX_FORMATS.get(suffix)
        if fmt is None:  # e.g. report.md: never write JSON under a name that promises otherwise
            from driftline.errors import InputError

            raise InputError(f"--output {args.output}: cannot tell the format from {suffix!r}",
                             fix="name the file .json, .html or .txt, or pass --format "
                             "json|table|html")
        return fmt
    return "table" if sys.stdout.isatty() else "json"


def _run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from driftline.analyze.offline import analyze, parse_duration
    from driftline.cli.output import output_path
    from driftline.engine.monitor import DEFAULT_MIN_RECORDS, DriftPolicy
    from driftline.errors import InputError
    from driftline.io.readers import discover
    from driftline.profile.format import BaselineProfile

    if args.output:
        output_path(args.output)
    profile = BaselineProfile.load(args.baseline)
    duration = parse_duration(args.window_duration) if args.window_duration else None
    policy = DriftPolicy(exact_ks=args.ks_pvalue == "exact")
    if args.psi_threshold is not None:
        policy = replace(policy, psi_threshold=args.psi_threshold)
    if args.alpha is not None:
        policy = replace(policy, alpha=args.alpha)
    if args.raw_psi:
        policy = replace(policy, correct_psi=False)
    if args.min_records is not None and args.min_records < 1:
        raise InputError(f"--min-records must be at least 1, got {args.min_records}",
                         fix="use e.g. --min-records 200 (1 decides on any window)")
    size = args.window_size
    if size is None:
        size = UNLIMITED if duration is not None else 1000
    if args.engine == "spark":
        from driftline.spark import analyze as spark_analyze
        from driftline.spark import read_table
        from driftline.spark.source import session

        if len(args.data) != 1:
            raise InputError("--engine spark takes one table name or path",
                             fix="give a directory or a glob Spark expands, in quotes")
        df = read_table(session(), args.data[0])
        stream: Iterable[Any] = spark_analyze(
            df, profile, window_size=args.window_size, window_duration=duration,
            timestamp=args.timestamp, window_column=args.window_column, drift=policy,
            min_records=args.min_records if args.min_records is not None
            else DEFAULT_MIN_RECORDS, domain_classifier=args.domain_classifier,
            name=args.data[0])
    fmt = _format(args)
    bar: Any = None
    if args.engine != "spark":
        if args.window_column:
            raise InputError("--window-column needs --engine spark",
                             fix="cut local windows with --window-size or --window-duration")
        from driftline.io.progress import read_progress, wanted

        files = discover(args.data)
        # JSON streamed to a terminal would be torn by the bar's redraws: no bar by default
        show = wanted(args.progress, quiet=args.quiet,
                      stdout_busy=fmt == "json" and not args.output)
        bar = read_progress(show, files)
        stream = analyze(profile, files, window_size=size, window_duration=duration,
                         timestamp=args.timestamp, drift=policy,
                         domain_classifier=args.domain_classifier,
                         min_records=args.min_records if args.min_records is not None
                         else DEFAULT_MIN_RECORDS, progress=bar, processes=args.processes)
    quality: list[Any] = []
    stream = _noting_quality(stream, quality)
    try:
        count, drifted = _emit(args, fmt, profile, stream, policy, size, duration, bar)
    finally:
        if bar is not None:
            bar.close()
    if args.output and not args.quiet:
        print(f"wrote {args.output}: {count} windows, {drifted} drifted", file=sys.stderr)
    for w in quality:
        print(f"driftline: data quality: window {w.index}: " + "; ".join(w.data_quality),
              file=sys.stderr)
    bad_data = bool(quality) and not args.allow_data_quality
    return 1 if args.fail_on_drift and (drifted or bad_data) else 0


def _emit(args: argparse.Namespace, fmt: str, profile: Any, stream: Iterable[Any], policy: Any,
          size: int, duration: float | None, bar: Any) -> tuple[int, int]:
    """Write the report; returns (windows, drifted windows). The bar is closed before a table or
    HTML report is printed (they are written once every window is in)."""
    if fmt == "json":  # streamed: memory stays flat however many windows there are
        if args.output:
            with _atomic(args.output) as fh:
                count, drifted = _write_json(profile, stream, fh)
        else:
            # a closed pipe (`| head`) ends here; driftline.cli.main stops quietly
            count, drifted = _write_json(profile, stream, sys.stdout)
    else:
        windows = list(stream)
        if bar is not None:
            bar.close()
        count, drifted = len(windows), sum(w.drifted for w in windows)
        if fmt == "html":
            from driftline.analyze.report_html import render_html

            text = render_html(profile, windows, policy=policy,
                               window_size=size if duration is None else None)
            if args.output:
                with _atomic(args.output) as fh:
                    fh.write(text)
            else:
                sys.stdout.write(text)
        else:
            from driftline.analyze.report_table import print_windows

            if args.output:
                with _atomic(args.output) as fh:
                    print_windows(profile, windows, file=fh)
            else:
                print_windows(profile, windows)
    return count, drifted


def _noting_quality(stream: Iterable[Any], out: list[Any]) -> Iterator[Any]:
    """Pass windows through, remembering those with data-quality failures."""
    for w in stream:
        if w.data_quality:
            out.append(w)
        yield w


def _write_json(profile: Any, windows: Iterable[Any], fh: IO[str]) -> tuple[int, int]:
    """The JSON document of ``report_document``, one window per line, written as windows close."""
    from driftline.analyze.offline import report_document

    head = json.dumps(report_document(profile, [])["baseline"])
    fh.write(f'{{"baseline": {head},\n "windows": [')
    count = drifted = 0
    for w in windows:
        fh.write(("\n  " if count == 0 else ",\n  ") + json.dumps(w.to_dict(), allow_nan=False))
        count += 1
        drifted += bool(w.drifted)
    fh.write("\n ]}\n")
    return count, drifted


class _atomic:
    """``atomic_write`` with OS errors at creation and rename reported as the option's error."""

    def __init__(self, path: str) -> None:
        self.path = str(path)

    def __enter__(self) -> Any:
        from driftline.cli.output import writing

        self._cm = atomic_write(self.path)
        with writing(self.path):
            return self._cm.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if exc_type is not None:
            return self._cm.__exit__(exc_type, exc, tb)
        from driftline.cli.output import writing

        with writing(self.path):
            return self._cm.__exit__(None, None, None)
