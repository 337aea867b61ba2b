#!/usr/bin/env bash
# Make sure a headless Chromium is there for the dashboard's browser tests.
#
#   docker/ensure-chromium.sh
#
# - $CHROMIUM_PATH, chromium, chromium-browser or google-chrome found: exit 0
#   (does nothing else).
# - Otherwise, as root (or with sudo) on Debian/Ubuntu: apt-get install
#   chromium (on Ubuntu, where that name is a snap stub, chromium-browser).
# - Where it cannot, it says what to do and exits 1: the browser tests fail
#   without a browser rather than skip.
set -euo pipefail
PROG=ensure-chromium
log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }

if [ -n "${CHROMIUM_PATH:-}" ] && [ -x "$CHROMIUM_PATH" ]; then exit 0; fi
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then exit 0; fi
done

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    log "ERROR: no Chromium, and not root to install it: apt-get install -y chromium (or set CHROMIUM_PATH)"
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "ERROR: no Chromium and no apt-get: install Chromium or Chrome and set CHROMIUM_PATH"
  exit 1
fi
log "installing Chromium with apt (the dashboard's browser tests drive it headless)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if ! $SUDO apt-get install -y -qq chromium >/dev/null; then
  $SUDO apt-get install -y -qq chromium-browser >/dev/null || {
    log "ERROR: apt-get could not install chromium; install it (or Chrome) and set CHROMIUM_PATH"
    exit 1
  }
fi
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || {
  log "ERROR: Chromium was installed but is not on PATH; set CHROMIUM_PATH"
  exit 1
}
log "Chromium is ready"
