#!/usr/bin/env bash
# Install Node 22 and Directus (package.json pins the version, package-lock.json every
# dependency: `npm ci`) from the npm registry into $CACHE_DIR, outside the repository:
#   ${KILN_HARNESS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/directus-<version>}
# A complete install (marked by $CACHE_DIR/installed, written last) is reused as is, so this is
# a no-op after the first run; up.sh calls it every time. Concurrent runs wait on a lock, and a
# broken or half-finished install is never taken for a complete one: it is redone.
#
#   install.sh           install if needed; prints the cache directory
#   install.sh --check   exit 0 if installed, 1 if not (installs nothing)
#
# Needs npm (any version, on any Node) on PATH, and a C/C++ toolchain, make and python3:
# sqlite3 and isolated-vm compile with node-gyp against the Node 22 headers of the npm package
# (their prebuilt-binary downloads come from GitHub, which the CI machine cannot reach).
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/env.sh"

log() { printf '[install %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

# package.json + package-lock.json: an install from another lockfile is not this one.
LOCK_HASH=$(cat "$HARNESS_DIR/package.json" "$HARNESS_DIR/package-lock.json" 2>/dev/null | sha256sum | cut -c1-16)

installed() {
  [ -f "$INSTALLED_FILE" ] && [ -x "$NODE_BIN" ] && [ -f "$DIRECTUS_CLI" ] &&
    grep -qx "directus=$DIRECTUS_VERSION" "$INSTALLED_FILE" &&
    grep -qx "node=v$NODE_VERSION" "$INSTALLED_FILE" &&
    grep -qx "lock=$LOCK_HASH" "$INSTALLED_FILE"
}

if [ "${1:-}" = --check ]; then installed && echo "$CACHE_DIR"; exit; fi
if installed; then echo "$CACHE_DIR"; exit 0; fi

if [ "$_os" = unsupported ] || [ "$_arch" = unsupported ]; then
  log "no Node package for $(uname -s)/$(uname -m); use the docker compose profile instead"; exit 1
fi
command -v npm >/dev/null || { log "npm is not on PATH: install Node.js (any version) to get it"; exit 1; }

mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
if ! flock -n 9; then
  log "another install into $CACHE_DIR is running; waiting for it"
  flock 9
fi
if installed; then echo "$CACHE_DIR"; exit 0; fi   # the other one finished it

T0=$(now)
rm -f "$INSTALLED_FILE"
INSTALL_LOG="$CACHE_DIR/install.log"
: > "$INSTALL_LOG"
# Unattended: no prompts, no progress bar, no audit/fund/update-notifier requests.
npm_quiet=(--no-audit --no-fund --no-progress --no-update-notifier --loglevel=warn --cache "$NPM_CACHE_DIR")

if ! { [ -x "$NODE_BIN" ] && [ "$("$NODE_BIN" -v)" = "v$NODE_VERSION" ]; }; then
  log "installing Node $NODE_VERSION (npm package $NODE_PKG) into $CACHE_DIR/node"
  rm -rf "$CACHE_DIR/node"; mkdir -p "$CACHE_DIR/node"
  echo '{"name":"kiln-harness-node","private":true}' > "$CACHE_DIR/node/package.json"
  (cd "$CACHE_DIR/node" && npm install "${npm_quiet[@]}" "$NODE_PKG@$NODE_VERSION") >> "$INSTALL_LOG" 2>&1 ||
    { log "npm install $NODE_PKG@$NODE_VERSION failed:"; tail -20 "$INSTALL_LOG" >&2; exit 1; }
  [ "$("$NODE_BIN" -v)" = "v$NODE_VERSION" ] || { log "$NODE_BIN is not Node $NODE_VERSION"; exit 1; }
fi

# Directus into a fresh directory beside the final one, moved into place only once it works.
log "installing directus@$DIRECTUS_VERSION into $APP_DIR (native modules build from source: minutes on 2 cores; log: $INSTALL_LOG)"
t_app=$(now)
rm -rf "$APP_DIR" "$APP_DIR.partial"; mkdir -p "$APP_DIR.partial"
cp "$HARNESS_DIR/package.json" "$APP_DIR.partial/"
[ -f "$HARNESS_DIR/package-lock.json" ] && cp "$HARNESS_DIR/package-lock.json" "$APP_DIR.partial/"
# Node 22 first on PATH, so npm's install scripts and node-gyp build for it; nodedir points
# node-gyp at the headers shipped in the Node package (no nodejs.org download).
if [ -f "$APP_DIR.partial/package-lock.json" ]; then npm_cmd=(npm ci); else npm_cmd=(npm install); fi
(cd "$APP_DIR.partial" && PATH="$NODE_PKG_DIR/bin:$PATH" npm_config_nodedir="$NODE_PKG_DIR" \
   "${npm_cmd[@]}" "${npm_quiet[@]}") >> "$INSTALL_LOG" 2>&1 ||
  { log "${npm_cmd[*]} directus@$DIRECTUS_VERSION failed:"; grep -E 'npm error|gyp ERR' "$INSTALL_LOG" | head -20 >&2; exit 1; }
# The native modules Directus loads must load under Node 22.
(cd "$APP_DIR.partial" && "$NODE_BIN" -e 'for (const m of ["sqlite3", "argon2", "sharp", "isolated-vm"]) require(m)') >> "$INSTALL_LOG" 2>&1 ||
  { log "directus@$DIRECTUS_VERSION installed, but a native module does not load:"; tail -20 "$INSTALL_LOG" >&2; exit 1; }
mv "$APP_DIR.partial" "$APP_DIR"
installed_version=$(cd "$APP_DIR" && "$NODE_BIN" -p 'require("./node_modules/directus/package.json").version')
[ "$installed_version" = "$DIRECTUS_VERSION" ] || { log "got directus $installed_version, not $DIRECTUS_VERSION"; exit 1; }

cat > "$INSTALLED_FILE" <<EOT
directus=$DIRECTUS_VERSION
node=v$NODE_VERSION
lock=$LOCK_HASH
installed_at=$(date -u +%FT%TZ)
directus_install_s=$(elapsed "$t_app")
total_install_s=$(elapsed "$T0")
cores=$(nproc)
EOT
log "Node $NODE_VERSION + directus@$DIRECTUS_VERSION installed in $(elapsed "$T0")s into $CACHE_DIR"
echo "$CACHE_DIR"
