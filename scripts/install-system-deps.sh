#!/usr/bin/env bash
# Debian packages the test suite needs: the Mosquitto broker and headless Chromium for dashboard tests; then the
# oref0 peer's Node packages (needs Node.js and npm).
set -euo pipefail
missing=()
command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto mosquitto-clients)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "node: $(node --version)  mosquitto: $(command -v mosquitto)  chromium: $(/usr/bin/chromium --version 2>/dev/null || echo missing)"
bash "$(dirname "$0")/install-peers.sh" node
