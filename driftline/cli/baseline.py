"""`driftline baseline build|show`: make a baseline profile from reference data, or print one."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from driftline.cli.options import add_proba, add_progress, add_target, alias


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (text or "").split(",") if s.strip())


def register(sub: Any) -> None:
    p = sub.add_parser("baseline", help="build or show a baseline profile")
    bsub = p.add_subparsers(dest="baseline_command", metavar="{build,show}")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    b = bsub.add_parser(
        "build", help="build a baseline profile from reference data",
        description="Read reference data (Parquet, CSV, JSONL or Arrow IPC files, directories or "
        "globs) in one streaming pass and write a baseline profile (JSON).",
    )
    b.add_argument("data", nargs="+", metavar="DATA", help="files, directories or quoted globs")
    b.add_argument("-o", "--output", required=True, metavar="FILE", help="profile to write")
    b.add_argument("--features", metavar="A,B,C",
                   help="feature columns (default: every column not named by another option)")
    b.add_argument("--exclude", metavar="A,B", help="columns to leave out")
    b.add_argument("--categorical", metavar="A,B",
                   help="columns to treat as categorical (default: string, boolean, dictionary)")
    b.add_argument("--prediction", metavar="COL", help="predicted class (or value) column")
    add_proba(b)
    add_target(b, old=("--label",))
    b.add_argument("--id", metavar="COL", help="request id column (not a feature)")
    b.add_argument("--timestamp", metavar="COL", help="event time column (not a feature)")
    b.add_argument("--model-name", default="model", metavar="NAME",
                   help="the model this baseline describes (default %(default)s)")
    b.add_argument("--model-version", default="1", metavar="V",
                   help="its version (default %(default)s)")
    b.add_argument("--task", choices=("classification", "regression"),
                   help="default: classification when --proba is given or predictions are labels")
    b.add_argument("--bins", type=int, default=10, metavar="N", help="quantile bins per numeric feature (10)")
    b.add_argument("--top-k", type=int, default=20, metavar="K", help="categories kept per feature (20)")
    b.add_argument("--summary-size", type=int, default=20_000, metavar="N",
                   help="reference values kept per numeric feature for KS (20000)")
    b.add_argument("--dle-rows", type=int, default=50_000, metavar="N",
                   help="labelled reference rows sampled to fit a regressor's direct loss "
                   "estimation (50000)")
    b.add_argument("--multivariate", action=argparse.BooleanOptionalAction, default=True,
                   help="fit the PCA reconstruction model of the tabular features for "
                   "multivariate drift (default: on; reads the data twice more)")
    b.add_argument("--embedding", metavar="COL[,COL]",
                   help="vector (embedding) columns: lists of numbers; fixed-size-list columns "
                   "are found without being named")
    b.add_argument("--text", metavar="COL[,COL]",
                   help="text columns, tracked by descriptors COL.length_chars, "
                   "COL.length_tokens, COL.non_letter_share, COL.unseen_token_share, COL.empty")
    b.add_argument("--embedding-components", type=int, default=5, metavar="K",
                   help="principal directions per embedding whose projections are tracked (5)")
    b.add_argument("--mmd-sample", type=int, default=1000, metavar="N",
                   help="reference vectors kept per embedding for the MMD test (1000)")
    b.add_argument("--source-revision", metavar="REV",
                   help="the data's version (DVC or Git revision, table snapshot), recorded in the "
                   "profile and shown by driftline_build_info")
    b.add_argument("--engine", choices=("local", "spark"), default="local",
                   help="local: stream the files here; spark: DATA is a table name or a path "
                   "Spark reads, profiled on the cluster (needs driftline[spark])")
    add_progress(b)
    b.set_defaults(func=_build)

    s = bsub.add_parser("show", help="print a baseline profile")
    s.add_argument("file", metavar="FILE", help="the baseline profile (JSON) to print")
    s.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (default) or the profile itself as JSON")
    alias(s, "--json", "--format", const="json")
    s.set_defaults(func=_show)


def _build(args: argparse.Namespace) -> int:
    from driftline.cli.output import output_path, writing
    from driftline.errors import InputError
    from driftline.io.readers import discover
    from driftline.profile.build import BuildOptions, build_profile, parse_proba

    output_path(args.output)  # before the data is read: a bad path fails in a second, not later
    from driftline.profile.build import check_model_labels

    check_model_labels(BuildOptions(model_name=args.model_name, model_version=args.model_version))
    if args.source_revision:
        from driftline.profile.build import check_revision

        check_revision(args.source_revision)

    for name, value, low in (("--bins", args.bins, 2), ("--top-k", args.top_k, 1),
                             ("--summary-size", args.summary_size, 2),
                             ("--embedding-components", args.embedding_components, 1),
                             ("--mmd-sample", args.mmd_sample, 2),
                             ("--dle-rows", args.dle_rows, 10)):
        if value < low:
            raise InputError(f"{name} must be at least {low}, got {value}")
    binary, multi = parse_proba(args.proba)
    opts = BuildOptions(
        features=_csv(args.features) or None, exclude=_csv(args.exclude),
        categorical=_csv(args.categorical), prediction=args.prediction, proba=multi,
        proba_binary=binary, target=args.target, id=args.id, timestamp=args.timestamp,
        model_name=args.model_name, model_version=args.model_version, task=args.task,
        bins=args.bins, top_k=args.top_k, summary_size=args.summary_size,
        multivariate=args.multivariate, embeddings=_csv(args.embedding), text=_csv(args.text),
        embedding_components=args.embedding_components, mmd_sample=args.mmd_sample,
        source_revision=args.source_revision, dle_rows=args.dle_rows,
    )
    if args.engine == "spark":
        from driftline.spark import build_baseline, read_table
        from driftline.spark.source import session

        if len(args.data) != 1:
            raise InputError("--engine spark takes one table name or path",
                             fix="give a directory or a glob Spark expands, in quotes")
        df = read_table(session(), args.data[0])
        profile = build_baseline(df, opts, name=args.data[0])
    else:
        from driftline.io.progress import wanted

        profile = build_profile(discover(args.data), opts,
                                progress=wanted(args.progress, quiet=args.quiet))
    with writing(args.output):
        profile.save(args.output)
    if not args.quiet:
        print(f"wrote {args.output}: {len(profile.features)} features, "
              f"{profile.n_records:,} records, id {profile.id}", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    from driftline.profile.format import BaselineProfile

    profile = BaselineProfile.load(args.file)
    if args.format == "json":
        # the file's own text, written piece by piece as save() does
        sys.stdout.writelines(profile.json_chunks())
        sys.stdout.write("\n")
        return 0
    from driftline.analyze.report_table import print_profile

    print_profile(profile)
    return 0
