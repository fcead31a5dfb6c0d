#!/usr/bin/env bash
# The whole test suite, as the README states it and CI runs it. It installs
# what the tests need (cargo-nextest, the python-nomad client, the Docker
# image the driver tests run, built from Debian's busybox-static) when missing,
# then runs the formatting and lint gates and every test, end-to-end suites
# included (they use a real agent, real processes and real sockets).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "==> installing cargo-nextest"
    cargo install cargo-nextest --locked
fi
if ! python3 -c "import nomad" >/dev/null 2>&1; then
    echo "==> installing python-nomad"
    python3 -m pip install --quiet --disable-pip-version-check python-nomad
fi

missing=""
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v iptables >/dev/null 2>&1 || missing="$missing iptables"
command -v dig >/dev/null 2>&1 || missing="$missing dnsutils"
if [ -n "$missing" ]; then
    echo "==> installing$missing (group networking and DNS tests)"
    apt-get update -qq && apt-get install -y -qq $missing >/dev/null
fi

echo "==> docker test image"
./scripts/docker-test-image.sh

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo nextest run"
cargo nextest run --workspace --no-fail-fast
