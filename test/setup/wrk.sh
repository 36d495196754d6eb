#!/usr/bin/env bash
# Installs wrk, the HTTP load generator bench/webhook.mjs drives the webhook with, from the
# distribution's packages (Debian/Ubuntu). Idempotent: nothing to do when wrk is on PATH.
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "error: wrk not found and no apt-get to install it: install wrk (https://github.com/wg/wrk)" >&2; exit 1; }
echo "==> installing wrk (apt-get)"
apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
command -v wrk >/dev/null 2>&1 || { echo "error: apt-get did not install wrk" >&2; exit 1; }
