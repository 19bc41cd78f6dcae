#!/usr/bin/env bash
# Build (once) and cache a Pyfhel 3.5.0 wheel that installs on machines without GitHub access.
#
# Why: PyPI has only Pyfhel's sdist, and its bundled SEAL 4.1.2 CMake build git-clones GSL, zlib and
# zstd from GitHub. We switch those optional dependencies off (SEAL's own compression is then
# unavailable; mpclr never uses it) and keep the wheel, so the ~6 min native build happens once per
# machine. mpclr's SEAL-format bridge depends on SEAL 4.1's binary layout: keep the pin exact.
#
# Usage: .ci/pyfhel-wheel.sh PYTHON   -> prints the path of the wheel
set -euo pipefail
PY=${1:-python3}
VERSION=3.5.0
SHA256=0375b83b5a83026924f59db25c4efa9f27e1e8a66d004658f4d24195986a04b6
URL=https://files.pythonhosted.org/packages/e8/4f/228e4196c08f48c188b9796bc2d60c57e2b227bed45faa1ccfed7e20b965/pyfhel-$VERSION.tar.gz
WHEELHOUSE=${MPCLR_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/mpclr/wheels}
TAG=$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')

mkdir -p "$WHEELHOUSE"
existing=$(ls "$WHEELHOUSE"/[Pp]yfhel-$VERSION-$TAG-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$existing" ]; then
  echo "$existing"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "building Pyfhel $VERSION for $TAG once (about 6 minutes on 2 cores); cached in $WHEELHOUSE" >&2
"$PY" - "$URL" "$SHA256" "$work/pyfhel.tar.gz" <<'PYEOF'
import hashlib, sys, urllib.request
url, sha, out = sys.argv[1:]
data = urllib.request.urlopen(url, timeout=300).read()
got = hashlib.sha256(data).hexdigest()
if got != sha:
    sys.exit(f"Pyfhel sdist checksum mismatch: expected {sha}, got {got} from {url}")
open(out, "wb").write(data)
PYEOF
tar -xzf "$work/pyfhel.tar.gz" -C "$work"
src="$work/pyfhel-$VERSION"
"$PY" - "$src/pyproject.toml" <<'PYEOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
for opt in ("SEAL_USE_MSGSL", "SEAL_USE_ZLIB", "SEAL_USE_ZSTD"):
    text, n = re.subn(rf"({opt}\s*=\s*)'ON'", r"\1'OFF'", text)
    if n != 1:
        sys.exit(f"could not switch off {opt} in Pyfhel's pyproject.toml (format changed?)")
open(path, "w").write(text)
PYEOF
rm -rf "$src/venv"   # the sdist ships a stray virtualenv folder
"$PY" -m pip wheel --no-deps -w "$work/dist" "$src" >&2
cp "$work"/dist/*.whl "$WHEELHOUSE"/
ls "$WHEELHOUSE"/[Pp]yfhel-$VERSION-$TAG-*.whl | head -n 1
