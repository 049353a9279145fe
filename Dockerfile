# Oppen's two images, one build:
#   docker build -t oppen:0.1.0 .                          # the server: dispatcher, API, MLflow
#   docker build --target train -t oppen:0.1.0-train .     # what training pods pull: lean
#   docker build --target train --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 \
#       -t oppen:0.1.0-train-cuda .
# The training image carries what `oppen train` needs (docker/requirements-train.txt: MLflow's
# client, not its server stack with pyarrow, pandas and scipy); the server image the rest.
# Not built in CI: the development machines have no Docker engine.

# --- simrs: the Rust simulator, compiled into a wheel -------------------------------------
FROM rust:1-slim-bookworm AS simrs
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-dev python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/build && /opt/build/bin/pip install --no-cache-dir "maturin>=1.5,<2"
WORKDIR /src
COPY simrs/ simrs/
RUN /opt/build/bin/maturin build --release --manifest-path simrs/Cargo.toml \
      --interpreter python3.11 --out /wheels

# --- the base both images share: Python, torch, the non-root user -------------------------
FROM python:3.11-slim-bookworm AS base
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OPPEN_HOME=/var/lib/oppen

# torch first, from the index that matches the hardware; the pin below then installs nothing.
RUN pip install --index-url "${TORCH_INDEX}" torch==2.13.0
# The user the pods' restricted securityContext names (runAsUser 10001).
RUN groupadd --gid 10001 oppen \
 && useradd --uid 10001 --gid oppen --home-dir /var/lib/oppen --create-home oppen

# --- train: what training pods pull (read-only root; OPPEN_HOME and /tmp are volumes) -------
FROM base AS train
COPY --from=simrs /wheels/ /tmp/wheels/
COPY docker/requirements-train.txt /tmp/requirements-train.txt
COPY pyproject.toml README.md /src/
COPY app/ /src/app/
RUN pip install -r /tmp/requirements-train.txt /tmp/wheels/simrs-*.whl \
 && pip install --no-deps /src \
 && rm -rf /tmp/wheels /tmp/requirements-train.txt /src
USER 10001:10001
WORKDIR /var/lib/oppen
ENTRYPOINT ["oppen"]
CMD ["train", "--help"]

# --- server: the dispatcher, the API and the MLflow server (the default target) -----------
FROM base AS server
COPY --from=simrs /wheels/ /tmp/wheels/
COPY pyproject.toml README.md /src/
COPY app/ /src/app/
RUN pip install /tmp/wheels/simrs-*.whl "/src[aws]" && rm -rf /tmp/wheels /src
USER 10001:10001
WORKDIR /var/lib/oppen
ENTRYPOINT ["oppen"]
CMD ["dispatcher", "run"]
