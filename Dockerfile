# The reconciler image: `reconcile.py` as the entry point, run by the CronJob in manifests/.
# Small base, pinned dependencies, non-root, read-only root filesystem (writes only to /tmp).
# Base: the newest 3.11 patch release on Debian 12. Pin it by digest where you build
# (`docker buildx imagetools inspect python:3.11.15-slim-bookworm` prints it), as
#   FROM python:3.11.15-slim-bookworm@sha256:<digest>
FROM python:3.11.15-slim-bookworm

# git for GitPython, ssh for ssh:// repositories; versions pinned (bookworm and bookworm-security)
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      git=1:2.39.5-0+deb12u3 \
      openssh-client=1:9.2p1-2+deb12u10 \
      ca-certificates=20250419~deb12u2 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 65532 --user-group --home-dir /tmp --no-create-home --shell /usr/sbin/nologin reconciler

WORKDIR /app
COPY requirements-runtime.lock ./
RUN pip install --no-cache-dir --no-compile --require-hashes -r requirements-runtime.lock

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
