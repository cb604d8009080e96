"""driftline serve configuration: defaults, env overrides, and errors naming file, key and fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_serve_support import make_profile

from driftline.config import Listen, load_config, parse_listen
from driftline.errors import ConfigError

MINIMAL = """\
models:
  - name: car-loan              # -> label model_name
    version: "1"                # -> label model_version
    baseline: baseline.json     # from `driftline baseline build`
proxy:
  listen: 127.0.0.1:8081
  upstream: http://127.0.0.1:8080
metrics:
  listen: 127.0.0.1:9108        # /metrics, /healthz, /readyz and the ingest endpoints
"""


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    make_profile().save(tmp_path / "baseline.json")
    return tmp_path


def write(d: Path, text: str) -> Path:
    p = d / "driftline.yaml"
    p.write_text(text)
    return p


def test_minimal_config(workdir: Path) -> None:
    cfg = load_config(write(workdir, MINIMAL), environ={})
    m = cfg.models[0]
    assert (m.name, m.version, m.baseline) == ("car-loan", "1", workdir / "baseline.json")
    assert (m.prediction_output, m.probabilities_output) == ("predict", "predict_proba")
    assert cfg.proxy is not None and cfg.proxy.listen == Listen("127.0.0.1", 8081)
    assert cfg.proxy.upstream == "http://127.0.0.1:8080"
    assert cfg.metrics == Listen("127.0.0.1", 9108)
    assert cfg.windows.records == 1000 and cfg.windows.max_age == 300.0
    assert cfg.sampling.rate == 1.0
    assert cfg.otlp.active({}) is False
    assert cfg.otlp.active({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) is True


def test_env_overrides_file_and_arguments_override_env(workdir: Path) -> None:
    env = {"DRIFTLINE_PROXY_UPSTREAM": "http://127.0.0.1:9000", "DRIFTLINE_SAMPLING_RATE": "0.25",
           "DRIFTLINE_WINDOWS_MAX_AGE": "5m", "DRIFTLINE_MODELS_0_VERSION": "7",
           "DRIFTLINE_OTLP_ENABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}
    cfg = load_config(write(workdir, MINIMAL), environ=env,
                      overrides={"sampling.rate": 0.5})
    assert cfg.proxy is not None and cfg.proxy.upstream == "http://127.0.0.1:9000"
    assert cfg.proxy.endpoint == "default"
    assert cfg.sampling.rate == 0.5
    assert cfg.windows.max_age == 300.0 and cfg.models[0].version == "7"
    assert cfg.otlp.active(env) is False


def test_proxy_endpoint_from_file_or_pod_environment(workdir: Path) -> None:
    cfg = load_config(write(workdir, MINIMAL.replace("proxy:\n", "proxy:\n  endpoint: canary\n")),
                      environ={})
    assert cfg.proxy is not None and cfg.proxy.endpoint == "canary"
    cfg = load_config(write(workdir, MINIMAL), environ={"DRIFTLINE_PROXY_ENDPOINT": "canary"})
    assert cfg.proxy is not None and cfg.proxy.endpoint == "canary"


def test_environment_only(workdir: Path) -> None:
    env = {"DRIFTLINE_MODELS_0_NAME": "m", "DRIFTLINE_MODELS_0_BASELINE":
           str(workdir / "baseline.json"), "DRIFTLINE_METRICS_LISTEN": ":9200"}
    cfg = load_config(None, environ=env)
    assert cfg.models[0].name == "m" and cfg.proxy is None
    assert cfg.metrics == Listen("0.0.0.0", 9200)


@pytest.mark.parametrize(("text", "key", "words"), [
    (MINIMAL.replace("metrics:", "metrcs:"), "metrcs", ["did you mean 'metrics'"]),
    (MINIMAL + "windows: {recrds: 10}\n", "windows.recrds", ["did you mean 'records'"]),
    (MINIMAL.replace("127.0.0.1:9108", "localhost"), "metrics.listen", ["host:port"]),
    (MINIMAL.replace("127.0.0.1:8081", "127.0.0.1:99999"), "proxy.listen", ["out of range"]),
    (MINIMAL.replace("baseline.json", "missing.json"), "models.0.baseline",
     ["not found", "driftline baseline build"]),
    (MINIMAL + "sampling: {rate: lots}\n", "sampling.rate", ["expected a number"]),
    (MINIMAL + "sampling: {rate: 2}\n", "sampling.rate", ["outside [0, 1]"]),
    (MINIMAL + "queue: {size: 0}\n", "queue.size", ["at least 1"]),
    (MINIMAL.replace("http://127.0.0.1:8080", "127.0.0.1:8080"), "proxy.upstream", ["http://"]),
    (MINIMAL.replace("127.0.0.1:9108", "127.0.0.1:8081"), "proxy.listen", ["different ports"]),
    ("models: []\n", "models", ["no models"]),
    (MINIMAL.replace("proxy:\n", "proxy:\n  endpoint: 'canary pods'\n"), "proxy.endpoint",
     ["not a valid endpoint label"]),
    (MINIMAL.replace("proxy:", "  - {name: car-loan, baseline: baseline.json}\nproxy:"),
     "models.1.name",
     ["configured twice"]),
    (MINIMAL.replace('version: "1"', 'version: ""'), "models.0.version",
     ["empty version", "default 1"]),
])
def test_errors_name_file_key_and_fix(workdir: Path, text: str, key: str, words: list[str]) -> None:
    path = write(workdir, text)
    with pytest.raises(ConfigError) as e:
        load_config(path, environ={})
    msg = str(e.value)
    assert e.value.key == key, msg
    assert str(path) in msg and key in msg, msg
    assert e.value.fix, msg
    for w in words:
        assert w in msg, msg


def test_env_error_names_the_variable(workdir: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(workdir, MINIMAL), environ={"DRIFTLINE_QUEUE_SIZE": "many"})
    assert "DRIFTLINE_QUEUE_SIZE" in str(e.value) and e.value.key == "queue.size"


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        load_config(write(tmp_path, "models:\n  - name: [\n"), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_parse_listen() -> None:
    assert parse_listen("[::1]:80") == Listen("::1", 80)
    assert parse_listen(9108) == Listen("0.0.0.0", 9108)
    with pytest.raises(ValueError):
        parse_listen("host:")


def test_cli_reports_config_error_before_listening(workdir: Path) -> None:
    """A bad config exits 2 with the message, without binding anything."""
    path = write(workdir, MINIMAL.replace("baseline.json", "gone.json"))
    r = subprocess.run([sys.executable, "-m", "driftline", "serve", "--config", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "models.0.baseline" in r.stderr and "driftline baseline build" in r.stderr


def test_cli_check(workdir: Path) -> None:
    path = write(workdir, MINIMAL)
    r = subprocess.run([sys.executable, "-m", "driftline", "serve", "--config", str(path),
                        "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "config OK" in r.stdout and "car-loan" in r.stdout


def test_damaged_baseline_is_a_config_error(workdir: Path) -> None:
    (workdir / "baseline.json").write_text('{"format": "something-else"}')
    path = write(workdir, MINIMAL)
    from driftline.collectors.sidecar import load_models
    with pytest.raises(ConfigError) as e:
        load_models(load_config(path, environ={}))
    assert e.value.key == "models.0.baseline"


def test_port_in_use_is_a_config_error_naming_the_key(workdir: Path) -> None:
    import asyncio
    import socket

    from driftline.collectors.runtime import Runtime

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for key in ("metrics.listen", "proxy.listen"):
            text = MINIMAL.replace("127.0.0.1:9108" if key == "metrics.listen"
                                   else "127.0.0.1:8081", f"127.0.0.1:{port}")
            text = text.replace("127.0.0.1:9108", "127.0.0.1:0")
            runtime = Runtime(load_config(write(workdir, text), environ={}))
            with pytest.raises(ConfigError) as e:
                asyncio.run(runtime.start())
            assert e.value.key == key and "choose a free port" in str(e.value)
            assert not runtime.worker.alive


def test_standard_otel_variables_apply_unless_the_file_sets_the_key(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_METRIC_EXPORT_INTERVAL and OTEL_EXPORTER_OTLP_PROTOCOL used to be overridden by the
    configuration's defaults (http/protobuf, 60 s) that serve passed explicitly."""
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    from driftline.collectors.runtime import Runtime

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "1500")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    by_env = Runtime(load_config(write(workdir, MINIMAL), environ={})).otlp
    assert by_env.interval_ms == 1500.0 and isinstance(by_env.exporter, Grpc)
    explicit = MINIMAL + "otlp:\n  protocol: http/protobuf\n  interval: 20s\n"
    by_file = Runtime(load_config(write(workdir, explicit), environ={})).otlp
    assert by_file.interval_ms == 20_000.0 and isinstance(by_file.exporter, Http)
    for var in ("OTEL_METRIC_EXPORT_INTERVAL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        monkeypatch.delenv(var)
    default = Runtime(load_config(write(workdir, MINIMAL), environ={})).otlp
    assert default.interval_ms == 60_000.0 and isinstance(default.exporter, Http)
