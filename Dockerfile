# fink-t2: Java 17 + pyspark + fink-t2; the default command replays the shipped sample night.
# GPU executors: Dockerfile.gpu. Deployment (spark-submit, Kubernetes, Fink): docs/deploy.md.
FROM python:3.11-slim-bookworm

# Debian's archive keeps only the current version of each package, so pinned versions would break
# rebuilds at the next security update; the base image tag pins the release (bookworm) instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/fink-t2
COPY pyproject.toml README.md ./
COPY fink_t2 ./fink_t2
COPY data ./data
COPY scripts ./scripts
RUN pip install --no-cache-dir -e .

ENV PYSPARK_PYTHON=python3
CMD ["fink-t2", "replay", "data/night_20211122_fink_science", "--output", "/tmp/fink-t2-output"]
