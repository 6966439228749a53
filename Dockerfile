# syntax=docker/dockerfile:1
# Forewarn as an installed wheel (not the checkout), its dependencies pinned by uv.lock.
#   docker build -t forewarn .
#   docker run --rm forewarn demo --customers 2000        # or: docker compose up --build
ARG PYTHON_IMAGE=python:3.12-slim

# Builder: the wheel and the locked constraints.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore UV_PYTHON_DOWNLOADS=never
# The uv pinned in pyproject.toml's test extra (./dev uses the same one).
RUN pip install --quiet uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
# forewarn/ links to the folders beside it (forewarn/flows -> ../flows, ...); COPY keeps the links, so
# copy every folder they name (tests/integration/test_wheel.py checks this list against forewarn/).
COPY forewarn forewarn
COPY cli cli
COPY config config
COPY connectors connectors
COPY demo demo
COPY detectors detectors
COPY flows flows
COPY outreach outreach
COPY web web
COPY reports reports
RUN uv build --quiet --wheel --out-dir /dist . \
 && uv export --quiet --frozen --no-hashes --no-emit-project --all-extras --no-header \
      --output-file /dist/constraints.txt

# Final: the wheel and its locked dependencies.
FROM ${PYTHON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PYTHONUNBUFFERED=1
COPY --from=builder /dist /tmp/dist
RUN pip install --quiet --constraint /tmp/dist/constraints.txt "$(ls /tmp/dist/forewarn-*.whl)" \
 && rm -rf /tmp/dist \
 && forewarn --help >/dev/null
WORKDIR /app
# The configs as files for `-c config/...` (the same ones ship inside the package, which the demo reads);
# docker-compose.yml mounts ./config over this folder so edits need no rebuild.
COPY config config
ENTRYPOINT ["forewarn"]
CMD ["demo"]
