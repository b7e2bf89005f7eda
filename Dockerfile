# dunning-stream worker image.
#   docker build -t dunning-stream .
#   docker run --rm dunning-stream --help      (arguments replace the default `worker` subcommand)
# Configuration is by environment (DUNNING_*, KAFKA_BOOTSTRAP_SERVERS): see streams/runtime/settings.py and docker-compose.yml.

# The one base image, pinned to an exact Python patch release and Debian release.
FROM python:3.11.13-slim-bookworm AS base

# --- build: install the project and its runtime extra into a venv (every dependency ships a wheel: no compiler) ---
FROM base AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/dunning
WORKDIR /src
# README* is a glob so the build works before and after README.md exists (setuptools only warns without it).
COPY pyproject.toml README* ./
COPY schemas/ schemas/
COPY rules/ rules/
COPY streams/ streams/
RUN /opt/dunning/bin/pip install '.[runtime]' \
 && /opt/dunning/bin/dunning --help >/dev/null

# --- runtime ---
FROM base
ENV PATH=/opt/dunning/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DUNNING_STATE_DIR=/var/lib/dunning \
    DUNNING_WEB_HOST=0.0.0.0 \
    DUNNING_WEB_PORT=6066
RUN groupadd --system --gid 10001 dunning \
 && useradd --system --uid 10001 --gid dunning --home-dir /var/lib/dunning --no-create-home \
            --shell /usr/sbin/nologin dunning \
 && mkdir -p /var/lib/dunning \
 && chown dunning:dunning /var/lib/dunning
COPY --from=build /opt/dunning /opt/dunning
# The directory exists and belongs to the worker before VOLUME, so a new named volume starts out writable by it.
VOLUME ["/var/lib/dunning"]
WORKDIR /var/lib/dunning
USER 10001:10001
EXPOSE 6066
ENTRYPOINT ["dunning"]
CMD ["worker"]
