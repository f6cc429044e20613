# Sourced by scripts/run and scripts/test: make .venv with Python 3.11+ and install the project
# with exactly the versions in requirements/<run|test>.lock, each checked against its hash
# (EXTRAS=test picks the test lock). The project itself goes in editable, without dependencies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Workspaces needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
lock=requirements/run.lock
[ "${EXTRAS:-}" = test ] && lock=requirements/test.lock
pip=(.venv/bin/python -m pip --quiet --disable-pip-version-check)
# Installing again only when the lock or pyproject.toml changed keeps a second run fast.
stamp=.venv/.installed-$(basename "$lock")
if [ ! -f "$stamp" ] || [ "$lock" -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "${pip[@]}" install --require-hashes --only-binary :all: -r "$lock"
  "${pip[@]}" install --no-deps -e .
  touch "$stamp"
fi
