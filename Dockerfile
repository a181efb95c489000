# SageMaker bring-your-own-algorithm image: `train` and `serve` (nginx -> gunicorn -> flask) on PATH.
#   docker build -t byoa .                                  (algorithm chosen by the `algorithm` hyperparameter)
#   docker build --build-arg SAGEMAKER_ALGORITHM=kmeans .   (a drop-in image for the built-in k-means)
# Production: pin the base by digest, e.g. --build-arg BASE_IMAGE=public.ecr.aws/docker/library/debian@sha256:...
ARG BASE_IMAGE=public.ecr.aws/docker/library/debian:bookworm-slim
FROM ${BASE_IMAGE}

ARG SAGEMAKER_ALGORITHM=""
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BYOA_MATPLOTLIB_CACHE=/opt/matplotlib \
    PATH="/opt/program:/opt/venv/bin:${PATH}" \
    SAGEMAKER_ALGORITHM=${SAGEMAKER_ALGORITHM}

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv nginx ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first: a code change does not reinstall them.
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && MPLCONFIGDIR=/opt/matplotlib /opt/venv/bin/python -c "import matplotlib.pyplot"

COPY container/ /opt/program/
# Guard against CRLF endings and lost run bits from checkouts on other systems.
RUN sed -i 's/\r$//' /opt/program/train /opt/program/serve \
    && chmod 0755 /opt/program/train /opt/program/serve \
    && python3 -c "import sys; sys.path.insert(0, '/opt/program'); import byoa.training.main, byoa.serving.app, byoa.serving.launcher"

WORKDIR /opt/program
