#!/usr/bin/env bash
# Installs the C headers the native Kafka consumer's librdkafka compiles against (the rdkafka
# crate builds it from source with the extension): OpenSSL for TLS and SASL SCRAM, zlib.
# Idempotent: does nothing when Debian's packages are already installed.
set -euo pipefail
PACKAGES=(libssl-dev zlib1g-dev pkg-config make perl)
if ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
    # Not Debian: say what the build needs; cargo's error names what is missing if it fails.
    echo "compose/build-deps/install.sh: no apt-get; the build needs OpenSSL and zlib headers," \
         "pkg-config, make and perl" >&2
    exit 0
fi
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
