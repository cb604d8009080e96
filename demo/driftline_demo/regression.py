"""The demo's regression model: how much of a car loan an applicant will have repaid after a
year, scored without labels (direct loss estimation) and with them (labels joined by id).

The model is a linear regression on the applicants' numbers; its error is small for salaried
applicants with good credit and large for contract workers and the unemployed, so the size of
the error is learnable from the inputs. The baseline is built with ``--task regression
--target``, which fits the DLE trees; the downturn population (more contract work, lower
scores) is then logged through the SDK exactly as a model server would, the labels follow by id,
and the summary shows the estimated MAE/RMSE of the last window beside the realised values. In
the demo's stack Prometheus scrapes the SDK's metrics endpoint, so the shipped
``DriftlineEstimatedPerformanceDrop`` rule fires on the estimated MAE, as it would in production.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from driftline_demo.data import generate, write_parquet

#: Inputs of the regression model (numeric, NaN-free after imputation) and the categorical
#: features the baseline also watches.
NUMERIC = ("age", "annual_income", "loan_amount", "term_months", "credit_score", "debt_to_income")
CATEGORICAL = ("employment", "region")
TARGET = "repaid_share"


def repaid_share(cols: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """Share of the loan repaid after a year: grows with the credit score, falls with the
    debt-to-income ratio; its noise is several times larger for unstable employment."""
    rng = np.random.default_rng(seed)
    mean = 0.2 + 0.0004 * (cols["credit_score"] - 690.0) - 0.15 * (cols["debt_to_income"] - 0.23)
    spread = np.select([cols["employment"] == "unemployed", cols["employment"] == "contract",
                        cols["employment"] == "self_employed"], [0.09, 0.06, 0.04], 0.015)
    return np.asarray(mean + rng.normal(0.0, 1.0, len(mean)) * spread)


def _matrix(cols: dict[str, np.ndarray], medians: np.ndarray) -> np.ndarray:
    x = np.column_stack([np.asarray(cols[c], dtype=np.float64) for c in NUMERIC])
    return np.where(np.isnan(x), medians, x)


@dataclass(frozen=True)
class RegressionResult:
    """Last window of the downturn traffic: estimated (no labels) and realised (labels by id);
    ``alert`` is the Prometheus alert on the estimated error when the demo's stack ran one."""

    reference: dict[str, float]
    estimated: dict[str, float]
    realised: dict[str, float]
    labels: int
    records: int
    alert: dict[str, Any] | None = None


class RegressionDemo:
    """The regression model's monitoring, started with the demo's stack so that Prometheus
    scrapes its SDK metrics endpoint (``metrics_port``) from the first scrape on, as it would a
    model server's; :meth:`run` sends the downturn traffic and the labels later."""

    def __init__(self, seed: int = 0, rows: int = 3000, metrics_port: int | None = None) -> None:
        from sklearn.linear_model import LinearRegression

        from driftline.io.readers import discover
        from driftline.profile.build import BuildOptions, build_profile
        from driftline.sdk import Monitor

        self.seed, self.rows = seed, rows
        train = generate(rows, seed=seed + 100)
        ref = generate(rows, seed=seed + 101)
        self._medians = np.nanmedian(_matrix(train, np.zeros(len(NUMERIC))), axis=0)
        self._model = LinearRegression().fit(_matrix(train, self._medians),
                                             repaid_share(train, seed + 200))
        ref_cols = {k: ref[k] for k in (*NUMERIC, *CATEGORICAL)}
        ref_cols["prediction"] = self._model.predict(_matrix(ref, self._medians))
        ref_cols[TARGET] = repaid_share(ref, seed + 201)
        with tempfile.TemporaryDirectory() as d:
            path = write_parquet(Path(d) / "regression-reference.parquet", ref_cols)
            self.profile = build_profile(discover([str(path)]), BuildOptions(
                prediction="prediction", target=TARGET, task="regression",
                model_name="repayment", multivariate=False), progress=False)
        self.monitor = Monitor(self.profile, window_records=rows // 2, window_max_age=3600.0,
                               metrics_port=metrics_port)

    @property
    def metrics_port(self) -> int | None:
        return self.monitor.metrics_port

    def run(self) -> RegressionResult:
        """The downturn (more unstable employment) logged as a model server would, then the
        labels by id; the estimates and realised values of the last window."""
        live = generate(self.rows, seed=self.seed + 102, shift=0.8)
        pred = self._model.predict(_matrix(live, self._medians))
        labels = repaid_share(live, self.seed + 202)
        ids = [f"repay-{i}" for i in range(self.rows)]
        mon = self.monitor
        mon.log_batch({k: live[k] for k in (*NUMERIC, *CATEGORICAL)}, predictions=pred.tolist(),
                      ids=ids)
        mon.flush()
        for i, y in zip(ids, labels.tolist(), strict=True):  # the labels arrive later, by id
            mon.feedback(i, y)
        mon.flush()
        snap = mon.snapshot()
        out = self.profile.output
        assert out is not None
        last = snap.last_window
        return RegressionResult(reference=dict(out.reference_performance),
                                estimated=dict(snap.estimated_performance),
                                realised=dict(snap.performance),
                                labels=snap.labels.get("true", 0),
                                records=last.records if last is not None else 0)

    def close(self) -> None:
        self.monitor.close()


def run_regression(seed: int = 0, rows: int = 3000) -> RegressionResult:
    """The regression scenario in process, without a metrics endpoint."""
    demo = RegressionDemo(seed, rows)
    try:
        return demo.run()
    finally:
        demo.close()


class RegressionProcess:
    """:class:`RegressionDemo` in a process of its own, as the model server using the SDK would
    be: Prometheus scrapes its metrics endpoint, and a busy demo process (the traffic threads)
    cannot delay those scrapes past their timeout. Commands go over stdin (``run``; end of
    input closes it), results come back as one JSON line."""

    def __init__(self, seed: int, metrics_port: int, log: Path | None = None) -> None:
        self.metrics_port = metrics_port
        self._err = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "driftline_demo.regression", "--seed", str(seed),
             "--metrics-port", str(metrics_port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True)
        self._ready = False

    def wait_ready(self) -> RegressionProcess:
        """Block until the model is trained, its baseline built and the endpoint serving (the
        process does that while the caller starts the rest)."""
        if not self._ready:
            self._expect("ready")
            self._ready = True
        return self

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _expect(self, what: str) -> str:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the regression model process exited ({self._proc.wait()}) "
                               f"before {what}")
        return line

    def run(self) -> RegressionResult:
        self.wait_ready()
        assert self._proc.stdin is not None
        self._proc.stdin.write("run\n")
        self._proc.stdin.flush()
        return RegressionResult(**json.loads(self._expect("its result")))

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(15)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        if not isinstance(self._err, int):
            self._err.close()


def _serve(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m driftline_demo.regression")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--metrics-port", type=int, required=True)
    args = ap.parse_args(argv)
    demo = RegressionDemo(args.seed, metrics_port=args.metrics_port)
    try:
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() == "run":
                print(json.dumps(dataclasses.asdict(demo.run())), flush=True)
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(_serve())
