#!/usr/bin/env bash
# Installs the real programs the test suite drives (PostgreSQL, docker-compose for
# validating docker-compose.yml, Prometheus and Alertmanager for the metrics and alert
# tests, Chromium and its driver for the console's browser tests) from Debian's
# packages when they are missing, and the test OpenID provider (node's oidc-provider,
# pinned by tests/programs/oidc/package-lock.json) from npm.
# Idempotent: does nothing on a machine that already has them.
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v prometheus >/dev/null || need+=(prometheus)
# Debian names the binary prometheus-alertmanager; upstream's tarball, alertmanager.
command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null \
  || need+=(prometheus-alertmanager)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v npm >/dev/null || need+=(nodejs npm)

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing test programs: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

oidc="$(dirname "$0")/../tests/programs/oidc"
if [ ! -d "$oidc/node_modules/oidc-provider" ]; then
  echo "installing the test OpenID provider (npm ci in tests/programs/oidc)"
  (cd "$oidc" && npm ci --no-audit --no-fund --silent)
fi
