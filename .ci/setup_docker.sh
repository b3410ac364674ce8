#!/usr/bin/env bash
# Make the Docker sandbox usable on a fresh machine (as root): install docker.io and
# debootstrap, start dockerd in the background if no engine answers, then build the sandbox
# image offline (sandboxes/images/python/build.sh: debootstrap + docker import for the base,
# then the Dockerfile). Idempotent and quick when everything is already there; every step is
# time-bounded. Exits non-zero with a message when a step fails (the docker tests then skip
# with a reason).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "setup_docker: $*" >&2; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  [ "$(id -u)" = 0 ] || { log "docker.io/debootstrap missing and not root: cannot install"; exit 1; }
  log "installing docker.io and debootstrap"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >/dev/null
  timeout 600 apt-get install -y -qq docker.io debootstrap >/dev/null
fi

if ! timeout 20 docker info >/dev/null 2>&1; then
  if ! pgrep -x dockerd >/dev/null; then
    log "starting dockerd (log: /var/log/codegym-dockerd.log)"
    nohup dockerd >/var/log/codegym-dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do
    timeout 5 docker info >/dev/null 2>&1 && break
    sleep 1
  done
  timeout 20 docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/codegym-dockerd.log"; exit 1; }
fi
log "engine up: $(docker version --format '{{.Server.Version}}' 2>/dev/null)"

image="$(timeout 900 bash sandboxes/images/python/build.sh)"
log "sandbox image ready: $image"
