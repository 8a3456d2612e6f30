#!/usr/bin/env bash
# Set up everything the harness needs on a fresh machine, idempotently:
#   a virtual environment in .venv with the CPU build of torch and the project installed (editable, with test
#   extras); with --browser, Debian's Chromium for the browser tests.
# Environment: PYTHON (default python3), TORCH_SPEC (default torch==2.13.0, the CPU build this machine has on disk;
# on a GPU box set it to the build you want, e.g. TORCH_SPEC='torch>=2.4').
set -euo pipefail
cd "$(dirname "$0")/.."

browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    *) echo "setup.sh: unknown option $arg (valid: --browser)" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.harness-setup
want="$(sha256sum pyproject.toml | cut -c1-16) $TORCH_SPEC"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  # torch first and alone, so the pinned build is the one that satisfies the project's range.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$TORCH_SPEC"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
  echo "$want" > "$stamp"
fi

if [ "$browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  else
    echo "setup.sh: --browser needs Debian's chromium at /usr/bin/chromium; browser tests will be skipped" >&2
  fi
fi
echo "setup.sh: ready (.venv/bin/harness)"
