# Sourced by scripts/dev and scripts/test: make ./.venv and install the project into it.
# Reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${1:-base}
if [ ! -f "$stamp" ]; then
  echo "installing temporal-triggers into .venv ..."
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [ "${1:-}" = dev ]; then
    .venv/bin/python -m pip install --quiet -e ".[dev]"
  else
    .venv/bin/python -m pip install --quiet -e .
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi
