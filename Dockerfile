# The reconciler image: `reconcile.py` as the entry point, run by the CronJob in manifests/.
# Small base, pinned dependencies, non-root, read-only root filesystem (writes only to /tmp).
FROM python:3.11.7-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 65532 --user-group --home-dir /tmp --no-create-home --shell /usr/sbin/nologin reconciler

WORKDIR /app
COPY requirements-runtime.lock ./
RUN pip install --no-cache-dir --no-compile -r requirements-runtime.lock

COPY pyproject.toml reconcile.py ./
COPY ctpbackup/ ctpbackup/
COPY kubevalidation/ kubevalidation/
COPY schemas/ schemas/
RUN python -m compileall -q ctpbackup kubevalidation reconcile.py

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    GIT_TERMINAL_PROMPT=0

USER 65532:65532
ENTRYPOINT ["python", "/app/reconcile.py"]
CMD ["--help"]
