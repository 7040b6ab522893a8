# The project's virtualenv, shared by bin/dev, bin/test and bin/lock. Sourced, never run:
# the sourcing script sets ROOT (the repository, also its working directory) and SCRIPT (its
# own name for messages, e.g. "bin/test").
# shellcheck shell=bash

VENV="$ROOT/.venv"

# The Python 3.11 to create .venv with: $PYTHON if set, else python3.11, else python3.
find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "$SCRIPT: Python 3.11 is required (set PYTHON=/path/to/python3.11)." >&2
  return 1
}

create_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> Creating .venv"
    "$(find_python)" -m venv "$VENV"
  fi
}

# Install the lockfile for the named extra: requirements.lock for none (what production runs),
# requirements-test.lock for "test". Every file is pinned and hashed (bin/lock writes both
# from pyproject.toml). Reinstalls only when that lockfile changed since the last install into
# this venv; packages a lockfile no longer lists stay installed until .venv is recreated.
ensure_venv() {
  local lock="requirements${1:+-$1}.lock" stamp="$VENV/.kiln-installed${1:+-$1}"
  create_venv
  local want
  want="$(sha256sum "$lock" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> Installing dependencies from $lock"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
      -r "$lock"
    echo "$want" > "$stamp"
  fi
}
