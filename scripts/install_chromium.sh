#!/usr/bin/env bash
# Headless Chromium from Debian's packages, for the browser test of `cvlab reproduce`'s
# report.html (tests/test_reproduce_report.py drives it over the Chrome DevTools Protocol, so no
# chromedriver and no browser download is needed). Debian/Ubuntu, as root:
#
#   sudo bash scripts/install_chromium.sh
#
# Idempotent: a Chromium that already runs is left alone. Prints one line saying what it did or
# why it could not. Exit status 0: Chromium runs; 1: it does not (the browser test then skips).
set -uo pipefail

LOG=/tmp/install_chromium_apt.log

say() {
    echo "install_chromium: $*"
}

chromium_version() {
    local binary
    for binary in chromium chromium-browser google-chrome; do
        if command -v "$binary" > /dev/null; then
            timeout 30 "$binary" --headless --no-sandbox --version 2> /dev/null | head -n 1
            return
        fi
    done
    return 1
}

if version=$(chromium_version) && [ -n "$version" ]; then
    say "already installed ($version)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    say "Chromium is not installed and this is not root; not installing it"
    exit 1
fi
if ! command -v apt-get > /dev/null; then
    say "Chromium is not installed and there is no apt-get to install it"
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_options=(-q -y -o Acquire::Retries=1 -o Acquire::http::Timeout=20 -o Dpkg::Use-Pty=0
             --no-install-recommends)
if ! timeout 300 apt-get install "${apt_options[@]}" chromium > "$LOG" 2>&1; then
    # Stale package lists are the usual cause: refresh them once and retry.
    if ! timeout 120 apt-get update -q -o Acquire::Retries=1 -o Acquire::http::Timeout=20 \
            >> "$LOG" 2>&1; then
        say "apt-get update failed (offline?); see $LOG"
        exit 1
    fi
    if ! timeout 300 apt-get install "${apt_options[@]}" chromium >> "$LOG" 2>&1; then
        say "apt-get install chromium failed; see $LOG"
        exit 1
    fi
fi
if version=$(chromium_version) && [ -n "$version" ]; then
    say "installed $version (apt)"
    exit 0
fi
say "chromium was installed but does not run; see $LOG"
exit 1
