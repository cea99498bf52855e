#!/usr/bin/env bash
# Installs what the web page's browser test drives, where it is missing: Debian's chromium (Playwright
# is pointed at it and never downloads a browser) and CJK fonts, so Chinese text renders in screenshots.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
chromium --version 2>/dev/null
