#!/usr/bin/env bash
# Install the Debian packages the tests need, only if they are missing.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/tshark ] || need+=(tshark)   # reads the lessons' pcapng captures with tcrp_lab's dissector
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Debian packages: ${need[*]}"
# wireshark-common asks whether non-root users may capture: no (nothing here captures; tshark only reads files)
echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
