"""Driftline's end-to-end demo: generated data, a model server, the sidecar, Prometheus,
Alertmanager and the action receiver on 127.0.0.1 (``driftline demo``).

Also home of :mod:`driftline_demo.stack`, the loopback Prometheus/Alertmanager process manager
that only the demo, the tests and the benchmarks use; none of it ships in the production wheel.
"""
