# Shared by the install scripts: where things are cached and linked.
CACHE_ROOT="${AWS_SECRET_INJECTOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aws-secret-injector}"
BIN_DIR="$PWD/.cache/bin"
LOG_DIR="$PWD/.cache/logs"
mkdir -p "$CACHE_ROOT" "$BIN_DIR" "$LOG_DIR"
die() { echo "error: $*" >&2; exit 1; }
step() { echo "==> $*"; }
# link NAME TARGET: expose a cached binary as .cache/bin/NAME
link() { ln -sfn "$2" "$BIN_DIR/$1"; }
