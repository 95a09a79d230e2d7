#!/usr/bin/env bash
# Debian packages the test suite needs: the Mosquitto broker and headless Chromium for dashboard tests.
set -euo pipefail
missing=()
command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto mosquitto-clients)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "mosquitto: $(command -v mosquitto)  chromium: $(/usr/bin/chromium --version 2>/dev/null || echo missing)"
