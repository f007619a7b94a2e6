# fink-t2: Java 17 + pyspark + fink-t2; the default command replays the shipped sample night.
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/fink-t2
COPY setup.py README.md ./
COPY fink_t2 ./fink_t2
COPY data ./data
RUN pip install --no-cache-dir -e .

ENV PYSPARK_PYTHON=python3
CMD ["fink-t2", "replay", "data/night_20211122_fink_science", "--output", "/tmp/fink-t2-output"]
