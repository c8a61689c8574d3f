# wikitop on a slim Python image, with S3 output support.
#
#   docker build -t wikitop:0.1.0 .
#   docker run --rm -v "$PWD/out:/out" -e PATH_OUT_PREFIX=/out wikitop:0.1.0 hour 2020-01-22T02
#
# The arguments are those of the wikitop command; without any it runs `wikitop hour`, the hour
# that started 24 hours ago. Never built by the test suite: see docs/deploy.md.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=wheel /wheels /wheels
RUN pip install "$(ls /wheels/wikitop-*.whl)[s3]" && rm -r /wheels
# Downloaded dumps and the parsed blacklist; mount a volume here to keep them between runs.
ENV WIKITOP_CACHE_DIR=/var/cache/wikitop
RUN useradd --uid 10001 --create-home wikitop \
    && mkdir -p "$WIKITOP_CACHE_DIR" \
    && chown 10001:10001 "$WIKITOP_CACHE_DIR"
# Numeric, so that Kubernetes can check runAsNonRoot.
USER 10001
WORKDIR /home/wikitop
ENTRYPOINT ["wikitop"]
CMD ["hour"]
