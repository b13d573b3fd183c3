#!/usr/bin/env bash
# The images a machine without an image registry cannot pull, made from package registries alone:
#   local/debian:bookworm     Debian's minimal base, by debootstrap from apt's own mirror
#   local/python:3.11-slim    Debian's Python 3.11 on it, standing in for python:3.11-slim
#   local/chroma:VERSION      a Chroma server from the chromadb release requirements.lock pins, serving the same
#                             port, path and heartbeat as chromadb/chroma:VERSION
# It also stages what a build here needs and a user's build never sees: the host's CA bundle (pip reaches the
# registries through this machine's certificate authority) and the CPU torch wheel from PIP_FIND_LINKS, in
# deploy/build-extras/ (ignored by git). Each image that exists already is kept. Needs root and a running
# Docker engine (make compose-cpu starts one).
set -euo pipefail
cd "$(dirname "$0")/.."

chroma_version=$(sed -n 's/^chromadb==\([^ ]*\).*/\1/p' requirements.lock)
extras=deploy/build-extras
mkdir -p "$extras"
cp /etc/ssl/certs/ca-certificates.crt "$extras/ca-certificates.crt"
for folder in ${PIP_FIND_LINKS:-}; do
  cp -n "$folder"/torch-*+cpu-*.whl "$extras/" 2>/dev/null || true
done

exists() { docker image inspect "$1" > /dev/null 2>&1; }

if ! exists local/debian:bookworm; then
  command -v debootstrap > /dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap > /dev/null; }
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase bookworm "$root" "${mirror:-http://deb.debian.org/debian}" > /dev/null
  tar -C "$root" -c . | docker import - local/debian:bookworm > /dev/null
fi

if ! exists local/python:3.11-slim; then
  # python-is-python3: the Dockerfile, like python:3.11-slim, calls `python`.
  docker build --network host -t local/python:3.11-slim - <<'EOF'
FROM local/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
EOF
fi

if ! exists "local/chroma:$chroma_version"; then
  docker build --network host -t "local/chroma:$chroma_version" -f deploy/chroma.Dockerfile .
fi
echo "local images: local/python:3.11-slim, local/chroma:$chroma_version"
