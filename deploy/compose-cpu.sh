#!/usr/bin/env bash
# The CPU stack (compose.cpu.yaml) for real: `make compose-cpu` / `make compose-cpu-down [ARGS=-v]`.
#   up:   starts a Docker engine if none answers (as root, with Debian's docker.io), makes the local stand-in
#         images when the official ones cannot be pulled (deploy/local-images.sh), builds, brings the stack
#         up detached, and waits until every service is healthy. Prints the seconds each step took.
#   build: the engine and the images only (CI starts it in the background while the suite runs).
#   down: stops it; `down -v` also removes its volumes.
set -euo pipefail
cd "$(dirname "$0")/.."
project=rag-cpu
compose=(docker-compose -p "$project" -f compose.cpu.yaml)
chroma_version=$(sed -n 's/^chromadb==\([^ ]*\).*/\1/p' requirements.lock)
started=$(date +%s)
step() { echo "[$(( $(date +%s) - started )) s] $*"; }

engine() {
  docker info > /dev/null 2>&1 && return
  if [ "$(id -u)" != 0 ]; then
    echo "no Docker engine answers; start one (as root: dockerd), then run this again" >&2
    exit 1
  fi
  if ! command -v dockerd > /dev/null || ! command -v docker-compose > /dev/null; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends docker.io docker-compose > /dev/null
  fi
  # No iptables: these machines' sandbox has none to give; published ports go through docker-proxy.
  step "starting a Docker engine (log: /tmp/rag-dockerd.log)"
  # RAG_DOCKERD_NICE: the engine's (and so every build's and container's) CPU priority; .ci/run lowers it so
  # that the image build in the background yields the two cores to the test suite.
  nohup nice -n "${RAG_DOCKERD_NICE:-0}" dockerd --iptables=false --ip6tables=false > /tmp/rag-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info > /dev/null 2>&1 && return; sleep 1; done
  echo "the Docker engine did not start: see /tmp/rag-dockerd.log" >&2
  exit 1
}

images() {
  # A registry: the official images, as a user gets them. None: the stand-ins, built from package registries.
  if docker image inspect "chromadb/chroma:$chroma_version" > /dev/null 2>&1 \
      || timeout 60 docker pull -q "chromadb/chroma:$chroma_version" > /dev/null 2>&1; then
    return
  fi
  step "no image registry: making local stand-in images (deploy/local-images.sh)"
  bash deploy/local-images.sh
  export CHROMA_IMAGE="local/chroma:$chroma_version" BASE_IMAGE=local/python:3.11-slim TORCH_INDEX=
}

build() {
  # One build at a time: CI starts one in the background while the suite runs, and the stack test's
  # `make compose-cpu` waits here for it to finish, then finds every layer cached.
  exec 9> "${TMPDIR:-/tmp}/rag-compose-cpu-build.lock"
  if ! flock -n 9; then
    step "waiting for the build already under way"
    flock 9
  fi
  images
  step "building (legacy builder, host network)"
  COMPOSE_DOCKER_CLI_BUILD=0 DOCKER_BUILDKIT=0 "${compose[@]}" build
  exec 9>&-
}

healthy() {
  local deadline=$(( $(date +%s) + ${COMPOSE_WAIT_S:-1200} )) ids status
  while [ "$(date +%s)" -lt "$deadline" ]; do
    ids=$("${compose[@]}" ps -q)
    if [ -z "$ids" ]; then sleep 5; continue; fi
    # shellcheck disable=SC2086  # one argument per container id
    status=$(docker inspect --format '{{.Name}} {{.State.Health.Status}}' $ids)
    if ! grep -qv ' healthy$' <<< "$status"; then
      step "healthy: $(tr '\n' ' ' <<< "$status")"
      return
    fi
    if grep -q ' unhealthy$' <<< "$status"; then
      "${compose[@]}" logs --tail 50 >&2
      echo "a service is unhealthy: $status" >&2
      exit 1
    fi
    sleep 5
  done
  "${compose[@]}" logs --tail 50 >&2
  echo "not healthy in time: $status" >&2
  exit 1
}

case "${1:-up}" in
  engine)
    engine
    ;;
  build)
    engine
    build
    step "built"
    ;;
  up)
    engine
    build
    step "up"
    "${compose[@]}" up -d
    healthy
    docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^(rag-api|local/|chromadb/)' || true
    ;;
  down)
    shift
    if docker info > /dev/null 2>&1; then "${compose[@]}" down "$@"; fi
    ;;
  *)
    echo "usage: $0 up|build|engine|down [docker-compose down options]" >&2
    exit 2
    ;;
esac
