#!/usr/bin/env bash
# Peer controllers for the closed-loop simulation: OpenAPS oref0 (Node, from peers/oref0/package-lock.json) and
# Tidepool's PyLoopKit (into the active Python environment, from requirements/peers.txt with hashes, no deps).
# Usage: bash scripts/install-peers.sh [python|node|all]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
part="${1:-all}"

install_node() {
  command -v npm >/dev/null 2>&1 || { echo "install-peers: npm not found (Node.js 18+ is needed for oref0)" >&2; exit 1; }
  # node_modules is stale when it was not installed from this very lock file (its hash is stamped after npm ci)
  local lock=peers/oref0/package-lock.json stamp=peers/oref0/node_modules/.vigil-lock.sha256
  if [ ! -f "$stamp" ] || [ "$(sha256sum < "$lock")" != "$(cat "$stamp")" ]; then
    npm ci --prefix peers/oref0 --no-audit --no-fund --ignore-scripts --loglevel=error
    sha256sum < "$lock" > "$stamp"
  fi
  echo "oref0: $(node -p 'require("./peers/oref0/node_modules/oref0/package.json").version')"
}

# pyloopkit-test ships a top-level `tests` package that would shadow the repository's own tests/: remove it,
# but only the files its RECORD says are its own.
remove_pyloopkit_tests_package() {
  python - <<'PY'
import shutil
from importlib import metadata
from pathlib import Path

dist = metadata.distribution("pyloopkit-test")
if any(f.parts[0] == "tests" for f in dist.files or []):
    tests = Path(dist.locate_file("tests"))
    if tests.is_dir():
        shutil.rmtree(tests)
        print(f"install-peers: removed pyloopkit-test's top-level package {tests} (it would shadow the repo's tests/)")
PY
}

install_python() {
  python -m pip install -qq --require-hashes --no-deps -r requirements/peers.txt
  remove_pyloopkit_tests_package
  python -c 'import pyloopkit.loop_data_manager; print("pyloopkit:", __import__("importlib.metadata").metadata.version("pyloopkit-test"))'
}

case "$part" in
  node) install_node ;;
  python) install_python ;;
  all) install_node; install_python ;;
  *) echo "usage: $0 [python|node|all]" >&2; exit 2 ;;
esac
