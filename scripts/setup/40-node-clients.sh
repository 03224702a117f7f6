# Node.js clients for the example server's tests: installs the exact versions
# pinned by each lock file under examples/server/tests/clients/ (openid-client
# v6, for examples/server/tests/openid_client.rs). Installs Debian's nodejs and
# npm if node is missing. Sourced by scripts/test: no `exit`; quick when the
# packages already match their lock file.
# shellcheck shell=bash

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "== node clients setup: installing Debian's nodejs and npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
# openid-client v6 runs on Node.js 20 or later (older Debian releases ship 18).
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "== node clients setup: $(node --version) is too old for openid-client v6; install Node.js 20 or later" >&2
fi

dg_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
for dg_lock in "$dg_root"/examples/server/tests/clients/*/package-lock.json; do
  [ -e "$dg_lock" ] || continue
  dg_client="$(dirname "$dg_lock")"
  # npm ci empties node_modules first, so this stamp of the lock file it
  # installed from is there only after a complete install of that lock file.
  dg_stamp="$dg_client/node_modules/.installed-from.sha256"
  dg_want="$(sha256sum <"$dg_lock")"
  if [ ! -f "$dg_stamp" ] || [ "$(cat "$dg_stamp")" != "$dg_want" ]; then
    echo "== node clients setup: npm ci in $dg_client"
    if (cd "$dg_client" && npm ci --no-audit --no-fund --loglevel=error); then
      printf '%s\n' "$dg_want" >"$dg_stamp"
    else
      echo "== node clients setup: npm ci failed in $dg_client" >&2
    fi
  fi
done
unset dg_root dg_lock dg_client dg_stamp dg_want
