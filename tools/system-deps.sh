#!/usr/bin/env bash
# Install the Debian packages that GUI tests need (Xvfb + Mesa OpenGL), when missing.
# As root: installs them with apt-get. Otherwise: says what is missing and how to install it.
set -euo pipefail
missing=()
for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: not a Debian-like system; GUI tests need Xvfb and Mesa OpenGL ($*)." >&2
    echo "system-deps: install their equivalents by hand; the GUI tests will fail without a display." >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: the GUI tests need these Debian packages, which are missing:" >&2
    echo "    ${missing[*]}" >&2
    echo "system-deps: run as root, or: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "system-deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
