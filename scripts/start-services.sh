#!/usr/bin/env bash
# Make sure the services the tests talk to are up: PostgreSQL on 5432 and Mosquitto on 1883.
set -uo pipefail
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! port_open 1883 && command -v mosquitto >/dev/null 2>&1; then
  if [ -f /etc/mosquitto/mosquitto.conf ]; then mosquitto -d -c /etc/mosquitto/mosquitto.conf; else mosquitto -d -p 1883; fi
fi
for i in $(seq 1 30); do port_open 5432 && port_open 1883 && break; sleep 1; done
port_open 5432 && echo "postgresql: up" || echo "postgresql: not reachable"
port_open 1883 && echo "mosquitto: up" || echo "mosquitto: not reachable"
exit 0
