# Sourced by test/setup/kube.sh and test/setup/kube-oldest.sh (after common.sh): builds Kubernetes
# commands of one release from the Go module proxy with the machine's Go into
# $CACHE_ROOT/kubernetes-<version>/bin, once per version and set of commands.

# build_kube VERSION LINK_DIR BIN...: k8s.io/kubernetes lists its staging modules (k8s.io/api,
# k8s.io/apiserver, ...) as v0.0.0 with replaces into its own tree, so a wrapper module requires it
# and replaces each of them with the matching published release (v0.X.Y for v1.X.Y), a list read
# from that go.mod. The binaries are linked into LINK_DIR.
build_kube() {
  local version=$1 link_dir=$2
  shift 2
  local bins=("$@")
  local dir="$CACHE_ROOT/kubernetes-$version"
  local missing=0 b
  for b in "${bins[@]}"; do [ -x "$dir/bin/$b" ] || missing=1; done
  if [ $missing = 0 ]; then
    step "Kubernetes $version: cached"
  else
    need go "install Go (https://go.dev/dl/) to build Kubernetes $version"
    local src="$dir/src"
    rm -rf "$src" "$dir/bin.tmp"
    mkdir -p "$src"
    local kube_gomod
    kube_gomod=$(cd "$src" && go mod download -json "k8s.io/kubernetes@$version" |
      sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
    [ -f "$kube_gomod" ] || die "could not download k8s.io/kubernetes@$version from the Go module proxy"
    local go_wanted
    go_wanted=$(sed -n 's/^go \(.*\)/\1/p' "$kube_gomod")
    if ! go_at_least "$go_wanted"; then
      # Unless told to stay local, go fetches the toolchain the wrapper's go.mod asks for.
      [ "$(go env GOTOOLCHAIN)" != local ] ||
        die "Kubernetes $version needs Go $go_wanted or newer; this machine has $(go env GOVERSION) and GOTOOLCHAIN=local"
      step "Go $(go env GOVERSION) is older than $go_wanted: go fetches that toolchain from the module proxy"
    fi
    step "Kubernetes $version: building ${bins[*]} (about 4 minutes per command on 2 cores)"
    local staging_version="v0.${version#v1.}"
    local replaces
    # the staging modules are exactly those replaced with a ./staging/ path in kubernetes' go.mod
    replaces=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/.*#\1#p' "$kube_gomod" | sort -u)
    [ -n "$replaces" ] || die "found no staging modules in $kube_gomod; has the layout of k8s.io/kubernetes changed?"
    {
      echo "module aws-secret-injector.local/kubernetes"
      echo
      echo "go $go_wanted"
      echo
      echo "require k8s.io/kubernetes $version"
      echo
      echo "replace ("
      for m in $replaces; do printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"; done
      echo ")"
    } >"$src/go.mod"
    {
      echo "//go:build tools"
      echo
      echo "// Keeps \`go mod tidy\` from dropping the requirements on the commands built from this module."
      echo "package tools"
      echo
      echo "import ("
      for b in "${bins[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$b\""; done
      echo ")"
    } >"$src/tools.go"
    echo "    $(echo "$replaces" | wc -l) staging modules pinned to $staging_version"
    (cd "$src" && run_logged "Kubernetes $version: go mod tidy" "$LOG_DIR/kube-$version-tidy.log" go mod tidy)
    # Without the version ldflags the server reports v0.0.0-master, which helm's kubeVersion
    # checks and .Capabilities.KubeVersion would see.
    local minor=${version#v1.}
    minor=${minor%%.*}
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
    local pkgs=()
    for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
    mkdir -p "$dir/bin.tmp"
    # Keep what an earlier build of this version made (another set of commands).
    [ -d "$dir/bin" ] && cp -a "$dir/bin/." "$dir/bin.tmp/"
    (cd "$src" && run_logged "Kubernetes $version: go build" "$LOG_DIR/kube-$version-build.log" \
      go build -trimpath -ldflags "$ldflags" -o "$dir/bin.tmp/" "${pkgs[@]}")
    for b in "${bins[@]}"; do [ -x "$dir/bin.tmp/$b" ] || die "go build did not produce $b"; done
    rm -rf "$dir/bin" && mv "$dir/bin.tmp" "$dir/bin"
  fi
  mkdir -p "$link_dir"
  for b in "${bins[@]}"; do ln -sfn "$dir/bin/$b" "$link_dir/$b"; done
  "$link_dir/${bins[0]}" --version
}
