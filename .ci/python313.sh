#!/usr/bin/env bash
# Builds CPython 3.13 from Debian trixie's source package into .cache/ and prints its
# interpreter path. Debian 12 ships only 3.11 and no Debian suite has 3.12, but trixie's
# pool carries the upstream CPython tarball (python3.13_X.Y.Z.orig.tar.xz), so the loop can
# be tested on 3.13 from the mirror this machine already uses. The tarball name and sha256
# are read from trixie's Sources index, so a point release needs no edit here.
#
# The interpreter goes to /opt/data-bridge/cpython-X.Y.Z (outside the checkout, so CI's
# fresh clone on the same machine reuses it; .cache/ when /opt is not writable); downloads
# are cached in .cache/downloads (git-ignored).
#
# Usage: .ci/python313.sh           -> prints the path of bin/python3.13 (builds if missing)
# Env:   DEBIAN_MIRROR (default http://deb.debian.org/debian), PY313_ROOT (install root)
set -euo pipefail
cd "$(dirname "$0")/.."

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=$PWD/.cache
DOWNLOADS=$CACHE/downloads
mkdir -p "$DOWNLOADS"

log() { echo "python313: $*" >&2; }

# The Sources stanza of python3.13: its Directory and the orig tarball's sha256 line.
sources=$DOWNLOADS/trixie-Sources.xz
if [ ! -s "$sources" ] || [ -n "$(find "$sources" -mmin +1440)" ]; then
    log "fetching trixie's Sources index"
    curl -fsSL --retry 3 -o "$sources.tmp" "$MIRROR/dists/trixie/main/source/Sources.xz"
    mv "$sources.tmp" "$sources"
fi
read -r directory sha256 orig < <(xz -dc "$sources" | awk '
    /^Package: / { pkg = $2; insha = 0 }
    pkg != "python3.13" { next }
    /^Directory: / { dir = $2 }
    /^Checksums-Sha256:/ { insha = 1; next }
    /^[^ ]/ { insha = 0 }
    insha && $3 ~ /\.orig\.tar\.xz$/ { sha = $1; file = $3 }
    /^$/ && file != "" { print dir, sha, file; exit }
')
if [ -z "${orig:-}" ]; then
    log "no python3.13 orig tarball in trixie's Sources index"
    exit 1
fi
version=${orig#python3.13_}
version=${version%.orig.tar.xz}
if [ -z "${PY313_ROOT:-}" ]; then
    PY313_ROOT=/opt/data-bridge
    mkdir -p "$PY313_ROOT" 2>/dev/null && [ -w "$PY313_ROOT" ] || PY313_ROOT=$CACHE
fi
prefix=$PY313_ROOT/cpython-$version
python=$prefix/bin/python3.13

# Two checkouts building at once would install over each other.
mkdir -p "$PY313_ROOT"
exec 9>"$PY313_ROOT/.cpython-$version.lock"
flock 9

if [ -x "$python" ] && "$python" -c 'import ssl, ctypes, lzma, bz2, zlib' 2>/dev/null; then
    echo "$python"
    exit 0
fi

tarball=$DOWNLOADS/$orig
if [ ! -s "$tarball" ] || ! echo "$sha256  $tarball" | sha256sum -c --quiet 2>/dev/null; then
    log "downloading $orig"
    curl -fsSL --retry 3 -o "$tarball.tmp" "$MIRROR/$directory/$orig"
    mv "$tarball.tmp" "$tarball"
fi
echo "$sha256  $tarball" | sha256sum -c --quiet || {
    log "sha256 mismatch for $orig"
    exit 1
}

# Only the headers the modules the tests import need (ssl, ctypes, lzma, bz2, zlib,
# sqlite3, uuid); readline, curses, tk and dbm are left out.
deps=(build-essential libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev uuid-dev)
missing=()
for dep in "${deps[@]}"; do
    dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q "ok installed" || missing+=("$dep")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

build=$(mktemp -d "${TMPDIR:-/tmp}/cpython-$version.XXXXXX")
trap 'rm -rf "$build"' EXIT
log "building CPython $version into $prefix"
tar -xJf "$tarball" -C "$build" --strip-components=1
(
    cd "$build"
    # No --enable-optimizations (PGO runs the test suite: +20 min on 2 cores) and no LTO:
    # this interpreter runs correctness tests, not benchmarks.
    ./configure --prefix="$prefix" --without-ensurepip >"$build/configure.log" 2>&1 \
        || { tail -30 "$build/configure.log" >&2; exit 1; }
    make -j"$(nproc)" >"$build/make.log" 2>&1 || { tail -40 "$build/make.log" >&2; exit 1; }
    make install >"$build/install.log" 2>&1 || { tail -40 "$build/install.log" >&2; exit 1; }
)
"$python" -c 'import ssl, ctypes, lzma, bz2, zlib' || {
    log "the built interpreter lacks a module the tests need"
    exit 1
}
echo "$python"
