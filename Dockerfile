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

# No documentation, manual pages, translations or apt caches from the packages (as debian:*-slim, whatever the base).
# hadolint ignore=DL3008
RUN printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/locale/*\npath-include /usr/share/locale/locale.alias\n' \
        > /etc/dpkg/dpkg.cfg.d/byoa-slim \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv nginx ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# Dependencies first: a code change does not reinstall them. What runs needs neither pip nor the packages'
# own test suites, C/Cython sources and type stubs; the compiled bytecode stays (start-up time).
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && /opt/venv/bin/python -m pip uninstall -y -q pip setuptools \
    && site=$(/opt/venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") \
    && find "$site" -depth -type d \( -name tests -o -name test \) -exec rm -rf {} + \
    && find "$site" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pyi' -o -name '*.c' -o -name '*.cpp' \
        -o -name '*.h' -o -name '*.hpp' -o -name '*.f' -o -name '*.f90' \) -delete \
    && MPLCONFIGDIR=/opt/matplotlib /opt/venv/bin/python -c "import matplotlib.pyplot, sklearn.tree, scipy.stats, dask.distributed"

COPY container/ /opt/program/
# Guard against CRLF endings and lost run bits from checkouts on other systems.
RUN sed -i 's/\r$//' /opt/program/train /opt/program/serve \
    && chmod 0755 /opt/program/train /opt/program/serve \
    && python3 -c "import sys; sys.path.insert(0, '/opt/program'); import byoa.training.main, byoa.serving.app, byoa.serving.launcher"

WORKDIR /opt/program
