#!/usr/bin/env bash
# Runs a command on Node.js 24, the runtime both images ship, whatever Node the machine has:
#   bash scripts/node.sh CMD [ARG...]
# Node: the machine's own if it is 24.x, otherwise the official build that the npm registry
# publishes as node-<os>-<arch>@$NODE_VERSION, unpacked once into the tool cache and put first on
# PATH (so npm, which starts with `#!/usr/bin/env node`, and everything it runs use it too).
# Packages: `npm ci` on that Node whenever package-lock.json changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
source test/setup/common.sh

# Pinned: the release the tests, benchmarks and `npm start` run on when the machine lacks 24.x.
NODE_VERSION=24.21.0
NODE_MAJOR=${NODE_VERSION%%.*}

if [[ "$(node --version 2>/dev/null)" != v$NODE_MAJOR.* ]]; then
  case "$(uname -s)" in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) die "no Node.js $NODE_MAJOR build for $(uname -s); install Node.js $NODE_MAJOR and run again" ;;
  esac
  case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "no Node.js $NODE_MAJOR build for $(uname -m); install Node.js $NODE_MAJOR and run again" ;;
  esac
  dir="$CACHE_ROOT/node-v$NODE_VERSION-$os-$arch"
  [[ -x "$dir/bin/node" ]] || cache_lock node
  if [[ ! -x "$dir/bin/node" ]]; then
    need npm "npm fetches Node.js $NODE_VERSION from the npm registry; install any Node.js with npm first"
    step "Node.js $NODE_VERSION: fetching node-$os-$arch from the npm registry"
    tmp=$(mktemp -d "$CACHE_ROOT/.node.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    tarball=$(cd "$tmp" && npm pack --silent "node-$os-$arch@$NODE_VERSION") ||
      die "npm could not fetch node-$os-$arch@$NODE_VERSION"
    tar -xzf "$tmp/$tarball" -C "$tmp"
    [[ -x "$tmp/package/bin/node" ]] || die "node-$os-$arch@$NODE_VERSION holds no bin/node"
    rm -rf "$dir"
    mv "$tmp/package" "$dir"
    rm -rf "$tmp"
    trap - EXIT
  fi
  exec 9>&- # the lock, if taken: not held by the command below
  export PATH="$dir/bin:$PATH"
fi
[[ "$(node --version)" == v$NODE_MAJOR.* ]] || die "expected Node.js $NODE_MAJOR on PATH, found $(node --version)"

# One install per lock file and Node version: a fresh clone (as CI makes) always installs.
stamp=node_modules/.installed
want="$(node --version) $(cksum <package-lock.json)"
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  step "npm ci on Node.js $(node --version)"
  npm ci
  echo "$want" >"$stamp"
fi

exec "$@"
