"""Start-up footprint: what importing the SDK and listing the commands pull in.

Heavy libraries are imported where they are used (a window's p-value, a calibration fit, a
stream detector), so that an application importing the SDK, or a user typing ``driftline
--help``, does not pay for them. Timings are ``python -m benchmarks footprint``; these tests
check the module sets, which do not depend on machine load.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

HEAVY = ("scipy", "river", "sklearn", "pyarrow", "prometheus_client", "opentelemetry")


def _imported(code: str, full: bool = False) -> set[str]:
    """The top-level packages (or, with ``full``, every module) a fresh process has loaded after
    running ``code``."""
    name = "m" if full else "m.split('.')[0]"
    probe = (f"{code}\nimport sys, json\n"
             f"print(json.dumps(sorted({{{name} for m in sys.modules}})))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


# What only the SDK's optional metrics port (the HTTP service: asyncio, TLS, httptools, the
# Prometheus encoder) or a config file (YAML) needs; an application importing the SDK does not.
SERVICE_ONLY = ("asyncio", "ssl", "httptools", "yaml", "prometheus_client",
                "driftline.collectors.service", "driftline.collectors.loop_thread",
                "driftline.exporters.prometheus", "driftline.exporters.text")


def test_sdk_import_skips_analysis_libraries() -> None:
    mods = _imported("import driftline.sdk")
    assert not mods & {"scipy", "river", "sklearn", "pyarrow", "pandas"}, sorted(
        mods & {*HEAVY, "pandas"})


def test_sdk_import_skips_what_only_the_metrics_port_needs() -> None:
    mods = _imported("import driftline.sdk", full=True)
    assert "driftline.collectors.sidecar" in mods  # the probe sees the SDK's own modules
    assert not mods & set(SERVICE_ONLY), sorted(mods & set(SERVICE_ONLY))


def test_sdk_monitor_loads_the_service_only_with_a_metrics_port() -> None:
    """Without ``metrics_port`` the SDK logs, closes windows and snapshots without the HTTP
    service; with one, the service loads on demand and answers /metrics."""
    code = """
import sys, urllib.request
sys.path.insert(0, "tests")
from test_serve_support import make_profile
import driftline.sdk
prof = make_profile()
with driftline.sdk.Monitor(prof, window_records=100, otlp=False) as mon:
    for i in range(250):
        mon.log({"f0": float(i % 7), "f1": 1.0, "f2": 2.0, "f3": 0.5}, prediction=i % 2)
    assert mon.flush() and mon.snapshot().windows_total == 2
    assert "driftline.collectors.service" not in sys.modules
with driftline.sdk.Monitor(prof, metrics_port=0, otlp=False) as mon:
    body = urllib.request.urlopen(f"http://127.0.0.1:{mon.metrics_port}/metrics").read()
    assert b"driftline_" in body
"""
    mods = _imported(code, full=True)
    assert "driftline.collectors.service" in mods


def test_sidecar_monitor_keeps_arrow_and_pandas_out() -> None:
    """A sidecar with a categorical feature and a classifier output, through /ingest-shaped
    records into closed windows and a scrape: Arrow (≈ 30 MiB) and pandas (≈ 40 MiB, which
    pyarrow's first array imports when installed) stay unloaded; they serve offline reading
    and text features only."""
    code = """
import sys
sys.path.insert(0, "tests")
import numpy as np
from test_serve_support import make_profile
from driftline.collectors.ingest import to_batch
from driftline.collectors.sidecar import Sidecar
from driftline.config import ModelConfig
from driftline.exporters.prometheus import new_registry, render
prof = make_profile(with_category=True)
sc = Sidecar([(ModelConfig("car-loan", "b.json"), prof)])
entry = sc.entries[0]
rng = np.random.default_rng(0)
recs = [{"features": {"f0": float(v), "f1": 1.0, "f2": 2.0, "f3": None,
                      "color": ["red", "blue", "pink", None, 3][i % 5]},
         "prediction": i % 2, "probabilities": [0.4, 0.6]} for i, v in enumerate(rng.normal(size=2500))]
reports = entry.monitors["default"].observe(to_batch(entry.schema, recs))
assert len(reports) == 2 and reports[0].features["color"].n_missing == 200, reports
render(new_registry(sc)[0], "text/plain")
"""
    mods = _imported(code)
    assert not mods & {"pyarrow", "pandas"}, sorted(mods & {"pyarrow", "pandas"})


def test_help_imports_no_heavy_library() -> None:
    mods = _imported("import contextlib, io\nfrom driftline.cli import main\n"
                     "with contextlib.redirect_stdout(io.StringIO()):\n"
                     "    try:\n        main(['--help'])\n    except SystemExit:\n        pass")
    assert not mods & {*HEAVY, "numpy", "yaml"}, sorted(mods & {*HEAVY, "numpy", "yaml"})


def test_demo_parser_matches_the_scenario() -> None:
    from driftline_demo import cli, scenario

    assert scenario.__doc__ is not None
    assert scenario.__doc__.split("\n\n")[0] == cli.DESCRIPTION
    assert scenario.DemoSettings().seed == cli.DEFAULT_SEED


def test_lazily_imported_detectors_work_in_a_fresh_process() -> None:
    # each detector loads its library on first use; a fresh process (nothing imported yet) gets
    # the same values as scipy / river called here
    from river import drift
    from scipy import stats

    code = """
import json, numpy as np
from driftline.detectors import StreamDetector, chi2_two_sample, ks_2samp_sorted
rng = np.random.default_rng(0)
ref, cur = np.sort(rng.normal(size=300)), rng.normal(0.3, 1, size=200)
det = StreamDetector.adwin()
hits = det.update(np.r_[np.zeros(500), np.ones(500)])
print(json.dumps([ks_2samp_sorted(ref, cur), chi2_two_sample(np.array([30, 50, 20]),
                  np.array([20, 60, 20])), hits]))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    ks, chi2, hits = json.loads(out.stdout)
    rng = np.random.default_rng(0)
    ref, cur = np.sort(rng.normal(size=300)), rng.normal(0.3, 1, size=200)
    res = stats.ks_2samp(ref, cur)
    assert ks == [float(res.statistic), float(res.pvalue)]
    c = stats.chi2_contingency(np.array([[30, 50, 20], [20, 60, 20]]), correction=False)
    assert np.allclose(chi2, [c.statistic, c.pvalue])
    adwin = drift.ADWIN(delta=0.002, clock=32, grace_period=10)
    expected = []
    for i, v in enumerate(np.r_[np.zeros(500), np.ones(500)]):
        adwin.update(float(v))
        if adwin.drift_detected:
            expected.append(i)
    assert hits == expected and hits


def test_offline_analysis_without_labels_skips_river() -> None:
    code = """
import numpy as np
from driftline.engine.monitor import Monitor, WindowPolicy
from driftline.engine.records import RecordBatch
from driftline.profile.format import BaselineProfile, Columns, NumericFeature
v = np.sort(np.random.default_rng(0).normal(size=500))
f = NumericFeature("x", (0.0,), (0.5, 0.5), tuple(v.tolist()), True, 500, 0.0, float(v[0]),
                   float(v[-1]), float(v.mean()), float(v.std()))
mon = Monitor(BaselineProfile("m", "1", "", 500, {"x": f}, Columns(None, {}), None),
              window=WindowPolicy(records=100, max_age=None), clock=None, streams=False)
reports = mon.observe(RecordBatch({"x": np.random.default_rng(1).normal(size=250)}))
assert len(reports) == 2 and reports[0].features["x"].ks_pvalue is not None
"""
    mods = _imported(code)
    assert "scipy" in mods and "river" not in mods
