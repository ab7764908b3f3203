# The Argus application image (grabber, stream workers, sensor gateway).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY argus argus
COPY schemas schemas
COPY services services
COPY pipelines pipelines
COPY tools tools
COPY triton_models triton_models
COPY config config
COPY ops ops
RUN pip install --no-cache-dir .
ENV ARGUS_METRICS_HOST=0.0.0.0
ENTRYPOINT ["argus"]
