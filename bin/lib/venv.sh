# The project's virtualenv, shared by bin/dev and bin/test. Sourced, never run:
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

# Install pyproject.toml's dependencies (plus the named extra) straight from the file: the
# project has no package of its own to build, and this leaves no *.egg-info in the tree.
# Reinstalls only when pyproject.toml changed since the last install into this venv.
ensure_venv() {
  local extra="$1" stamp="$VENV/.kiln-installed${1:+-$1}"
  create_venv
  local want
  want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> Installing dependencies from pyproject.toml${extra:+ (with [$extra])}"
    "$VENV/bin/python" - "$extra" > "$VENV/kiln-requirements.txt" <<'PYEOF'
import sys
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
requirements = list(project["dependencies"])
if sys.argv[1]:
    requirements += project["optional-dependencies"][sys.argv[1]]
print("\n".join(requirements))
PYEOF
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r "$VENV/kiln-requirements.txt"
    echo "$want" > "$stamp"
  fi
}
