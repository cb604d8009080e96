# Driftline sidecar image: slim, non-root, health-checked.
#   docker build -t driftline:0.1.0 .                 # the sidecar / receiver image
#   docker build --target demo -t driftline-demo .    # + scikit-learn and the demo model (compose)

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

FROM base AS build
# a C compiler for the compiled cores (native/changecore.c, windowcore.c, rowcore.c): the build stage only,
# the sidecar stage copies the installed package and stays slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY native ./native
COPY driftline ./driftline
COPY collectors ./collectors
COPY detectors ./detectors
COPY exporters ./exporters
COPY dashboards ./dashboards
COPY alertmanager ./alertmanager
RUN pip install --prefix=/install .

FROM base AS sidecar
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin driftline
USER 10001:10001
WORKDIR /tmp
# 8081: reverse proxy in front of the model; 9108: /metrics, /healthz, /readyz, /ingest,
# /feedback, /cloudevents. The receiver (`driftline actions serve`) listens on 9096.
EXPOSE 8081 9108 9096
ENV DRIFTLINE_HEALTH_URL=http://127.0.0.1:9108/healthz
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['DRIFTLINE_HEALTH_URL'], timeout=2)"]
ENTRYPOINT ["driftline"]
CMD ["serve", "--config", "/etc/driftline/driftline.yaml"]

FROM sidecar AS demo
USER root
COPY demo /src/demo
RUN pip install /src/demo \
 && mkdir /demo \
 && python -c "from pathlib import Path; from driftline_demo.scenario import prepare; prepare(Path('/demo'))" \
 && chown -R 10001:10001 /demo
USER 10001:10001
