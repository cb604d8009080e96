"""Assembles one running sidecar: monitors, worker, proxy, metrics port and OTLP.

Threads: the proxy runs on its own event loop thread (so that nothing else shares the model's
request path), the metrics-port service on the caller's loop, the collector worker and the OTLP
exporter on their own threads.

Shutdown order (SIGTERM/SIGINT in ``driftline serve``): stop accepting on the proxy (in-flight
exchanges finish) and on the metrics port, run what is queued, release pending CloudEvents,
close the open windows (``Monitor.flush``), then shut OTLP down with a final export so the
last window reaches the collector.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from driftline.collectors.service import App, HttpServer
from driftline.collectors.sidecar import MonitorFactory, Sidecar
from driftline.collectors.worker import Worker, WorkQueue
from driftline.config import ServeConfig
from driftline.errors import ConfigError
from driftline.redact import redact_url

_log = logging.getLogger("driftline.serve")


def cardinality_limits(cfg: ServeConfig) -> Any:
    from driftline.exporters.cardinality import CardinalityLimits

    return CardinalityLimits(max_categories_per_feature=cfg.limits.max_categories,
                             max_endpoints_per_model=cfg.limits.max_endpoints)


class Runtime:
    """Everything ``driftline serve`` runs; ``await start()`` … ``await stop()``."""

    def __init__(self, cfg: ServeConfig, *, monitor_factory: MonitorFactory | None = None,
                 otlp_exporter: Any = None) -> None:
        from driftline.exporters.prometheus import new_registry, render

        self.cfg = cfg
        self.sidecar = Sidecar.from_config(cfg, monitor_factory=monitor_factory)
        self.queue = WorkQueue(cfg.queue.size)
        self.sidecar.queue_stats.append(lambda: (self.queue.depth, self.queue.capacity))
        self.proxy_thread: Any = None
        self.proxy: Any = None
        samples = None
        if cfg.proxy is not None:
            from driftline.collectors.proxy import ProxyServer
            from driftline.collectors.sampling import Sampler
            from driftline.collectors.tee import SampleQueue

            samples = SampleQueue(cfg.queue.samples)
            sampler = Sampler(cfg.sampling.rate, cfg.sampling.max_per_second or None)
            self.proxy = ProxyServer(cfg.proxy.listen.host, cfg.proxy.listen.port,
                                     cfg.proxy.upstream, samples, sampler,
                                     timeout=cfg.proxy.timeout,
                                     max_body_copy=cfg.limits.max_sample_bytes,
                                     endpoint=cfg.proxy.endpoint,
                                     trust_endpoint_header="x-driftline-endpoint"
                                     in cfg.proxy.trusted_headers)
            self.sidecar.queue_stats.append(lambda: (samples.depth, samples.capacity))
            self.sidecar.drop_stats.append(
                lambda: {("", reason): n for reason, n in samples.dropped.items()})
            self.sidecar.drop_stats.append(
                lambda: {("", "rate_limited"): sampler.not_sampled["rate_limited"]})
            self.sidecar.latency_stats = self.proxy.latency_histograms
            self.sidecar.request_sources.append(self.proxy.requests)
            self.sidecar.proxy_stats = self.proxy.stats
        self.samples = samples
        self.worker = Worker(self.sidecar, self.queue, samples=samples,
                             tick_interval=cfg.tick_interval)
        limits = cardinality_limits(cfg)
        self.registry, _ = new_registry(self.sidecar, limits=limits)
        self.otlp: Any = otlp_exporter
        if self.otlp is None and cfg.otlp.active():
            from driftline.exporters.otlp import OtlpMetricsExporter

            # unset keys stay None: the exporter then reads the standard OTEL_* variables
            interval = cfg.otlp.interval
            self.otlp = OtlpMetricsExporter(self.sidecar, protocol=cfg.otlp.protocol,
                                            interval_ms=None if interval is None
                                            else interval * 1000.0,
                                            limits=limits)
        if self.otlp is not None:
            otlp = self.otlp
            self.sidecar.export_error_stats.append(lambda: {"otlp": int(otlp.export_errors)})
        registry = self.registry
        token = write_token(cfg)
        separate = cfg.ingest.listen is not None
        self.app = App(self.sidecar, self.queue, lambda accept: render(registry, accept),
                       ready_checks=self._ready_checks(), serve="read" if separate else "all",
                       write_token=token)
        self.http = HttpServer(self.app, cfg.metrics.host, cfg.metrics.port,
                               max_body=cfg.limits.max_body_bytes)
        #: The write endpoints' own listener (``ingest.listen``), else None.
        self.ingest_http: HttpServer | None = None
        if cfg.ingest.listen is not None:
            writer = App(self.sidecar, self.queue, self.app.renderer, serve="write",
                         write_token=token)
            self.ingest_http = HttpServer(writer, cfg.ingest.listen.host, cfg.ingest.listen.port,
                                          max_body=cfg.limits.max_body_bytes,
                                          ssl_context=ingest_ssl_context(cfg))

    def _ready_checks(self) -> dict[str, Any]:
        checks: dict[str, Any] = {
            "monitors_loaded": lambda: bool(self.sidecar.monitors()),
            "worker_running": lambda: self.worker.alive,
        }
        if self.cfg.proxy is not None:
            checks["proxy_listening"] = lambda: self.proxy is not None and self.proxy.running
        return checks

    @property
    def metrics_port(self) -> int:
        return self.http.port

    @property
    def ingest_port(self) -> int | None:
        """The write endpoints' own port, or None when they share the metrics port."""
        return None if self.ingest_http is None else self.ingest_http.port

    @property
    def proxy_port(self) -> int | None:
        return None if self.proxy is None else int(self.proxy.port)

    async def start(self) -> None:
        """Start everything; a port that cannot be bound is a ConfigError naming its key
        (whatever had started is stopped again)."""
        self.worker.start()
        try:
            try:
                await self.http.start()
            except OSError as exc:
                raise ConfigError(f"cannot listen on {self.cfg.metrics}: {exc.strerror or exc}",
                                  path=self.cfg.source, key="metrics.listen",
                                  fix="choose a free port") from None
            if self.ingest_http is not None:
                try:
                    await self.ingest_http.start()
                except OSError as exc:
                    raise ConfigError(f"cannot listen on {self.cfg.ingest.listen}: "
                                      f"{exc.strerror or exc}", path=self.cfg.source,
                                      key="ingest.listen", fix="choose a free port") from None
            if self.proxy is not None and self.cfg.proxy is not None:
                try:
                    self.proxy_thread = await asyncio.get_running_loop().run_in_executor(
                        None, self.proxy.run_in_thread)
                except OSError as exc:
                    raise ConfigError(
                        f"cannot listen on {self.cfg.proxy.listen}: {exc.strerror or exc}",
                        path=self.cfg.source, key="proxy.listen",
                        fix="choose a free port") from None
        except BaseException:
            await self.stop()
            raise
        if self.otlp is not None:
            self.otlp.start()

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        if self.proxy_thread is not None:
            await loop.run_in_executor(None, self.proxy_thread.stop, 10.0)
        await self.http.stop()
        if self.ingest_http is not None:
            await self.ingest_http.stop()
        await loop.run_in_executor(None, self.worker.stop)
        if self.otlp is not None:
            await loop.run_in_executor(None, self.otlp.shutdown)


def write_token(cfg: ServeConfig) -> Any:
    """The expected bearer token of the write endpoints as a callable (the file is re-read
    when it changes), or None when writes need no token."""
    if cfg.ingest.bearer_token_file is None:
        return None
    from driftline.alertmanager.actions_config import Secret

    return Secret(file=cfg.ingest.bearer_token_file).value


def ingest_ssl_context(cfg: ServeConfig) -> ssl.SSLContext | None:
    """TLS for the ingest listener; with a client CA, clients must present a certificate."""
    ing = cfg.ingest
    if ing.tls_cert_file is None or ing.tls_key_file is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(str(ing.tls_cert_file), str(ing.tls_key_file))
        if ing.tls_client_ca_file is not None:
            ctx.load_verify_locations(cafile=str(ing.tls_client_ca_file))
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load the ingest TLS files: {exc}", path=cfg.source,
                          key="ingest.tls_cert_file",
                          fix="point tls_cert_file/tls_key_file at a PEM certificate and its key, "
                              "tls_client_ca_file at a PEM CA bundle") from None
    return ctx


def listening_line(cfg: ServeConfig, metrics_port: int, proxy_port: int | None,
                   otlp: bool, ingest_port: int | None = None) -> str:
    """The start-up line; the upstream is shown without user-info."""
    proxy = ""
    if proxy_port is not None and cfg.proxy is not None:
        proxy = (f" proxy=http://{cfg.proxy.listen.host}:{proxy_port}"
                 f" upstream={redact_url(cfg.proxy.upstream)}")
    ingest = ""
    if ingest_port is not None and cfg.ingest.listen is not None:
        scheme = "https" if cfg.ingest.tls_cert_file is not None else "http"
        ingest = f" ingest={scheme}://{cfg.ingest.listen.host}:{ingest_port}"
    auth = []
    if cfg.ingest.bearer_token_file is not None:
        auth.append("bearer")
    if cfg.ingest.tls_client_ca_file is not None:
        auth.append("mtls")
    models = ",".join(f"{m.name}@{m.version}" for m in cfg.models)
    return (f"driftline serve: listening metrics=http://{cfg.metrics.host}:{metrics_port}{ingest}"
            f"{proxy} models={models} write_auth={'+'.join(auth) or 'none'} "
            f"otlp={'on' if otlp else 'off'}")


def serve(cfg: ServeConfig, *, out: Any = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code (0 after a clean drain)."""
    import signal
    import sys

    logging.basicConfig(level=cfg.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stream = out if out is not None else sys.stderr
    runtime = Runtime(cfg)  # loads baselines: config errors surface before anything listens

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runtime.start()
        print(listening_line(cfg, runtime.metrics_port, runtime.proxy_port,
                             runtime.otlp is not None, runtime.ingest_port), file=stream,
              flush=True)
        await stop.wait()
        print("driftline serve: stopping (draining queue, closing windows)", file=stream,
              flush=True)
        await runtime.stop()
        print("driftline serve: stopped", file=stream, flush=True)
        return 0

    from driftline.collectors.proxy import new_event_loop

    loop = new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()
