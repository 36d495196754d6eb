#!/usr/bin/env bash
# Installs the AWS API emulator (moto in server mode), pinned, into a virtualenv in the cache and
# links its console script as .cache/bin/moto_server. Idempotent: a complete virtualenv of the
# pinned version is only re-linked.
#
# The suites rely on these operations of it: Secrets Manager CreateSecret, PutSecretValue,
# GetSecretValue (VersionStage, VersionId, SecretBinary), BatchGetSecretValue (SecretIdList, per-
# secret Errors); SSM PutParameter (SecureString), GetParameters (WithDecryption, InvalidParameters);
# STS AssumeRole, AssumeRoleWithWebIdentity (any JWT-shaped token), GetCallerIdentity.
set -euo pipefail
cd "$(dirname "$0")/../.."
source test/setup/common.sh

MOTO_VERSION=5.2.5
venv="$CACHE_ROOT/moto-$MOTO_VERSION"
# Written last: a virtualenv without it is an interrupted install and is rebuilt.
stamp="$venv/.installed"
cache_lock moto

if [[ -f "$stamp" && -x "$venv/bin/moto_server" ]]; then
  link moto_server "$venv/bin/moto_server"
  echo "moto $MOTO_VERSION ready (cached in $venv)"
  exit 0
fi

python=""
for candidate in python3 python; do
  if command -v "$candidate" >/dev/null 2>&1 \
    && "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
    python="$candidate"
    break
  fi
done
[[ -n "$python" ]] || die "moto needs Python 3.9 or newer with venv and ensurepip (e.g. apt-get install python3 python3-venv)"

step "installing moto[server]==$MOTO_VERSION into $venv"
rm -rf "$venv"
"$python" -m venv "$venv" || die "could not create a virtualenv in $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
  || die "pip install moto[server]==$MOTO_VERSION failed"
installed="$("$venv/bin/python" -c 'import moto; print(moto.__version__)')"
[[ "$installed" == "$MOTO_VERSION" ]] || die "moto in $venv is $installed, not $MOTO_VERSION"
touch "$stamp"
link moto_server "$venv/bin/moto_server"
echo "moto $MOTO_VERSION ready (cached in $venv)"
