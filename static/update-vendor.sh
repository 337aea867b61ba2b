#!/usr/bin/env bash
# Refreshes the vendored front-end files under static/vendor from npm, at
# the pinned versions below. The Go build never needs npm: the files are
# committed. Run with `make assets`; change a version here to upgrade.
set -euo pipefail
XTERM_VERSION=6.0.0
XTERM_FIT_VERSION=0.11.0

cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@xterm/xterm@$XTERM_VERSION" "@xterm/addon-fit@$XTERM_FIT_VERSION" >/dev/null)
mkdir -p "$tmp/xterm" "$tmp/fit"
tar -xzf "$tmp/xterm-xterm-$XTERM_VERSION.tgz" -C "$tmp/xterm"
tar -xzf "$tmp/xterm-addon-fit-$XTERM_FIT_VERSION.tgz" -C "$tmp/fit"

rm -rf vendor && mkdir -p vendor/xterm vendor/addon-fit
cp "$tmp/xterm/package/lib/xterm.js" "$tmp/xterm/package/css/xterm.css" "$tmp/xterm/package/LICENSE" vendor/xterm/
cp "$tmp/fit/package/lib/addon-fit.js" "$tmp/fit/package/LICENSE" vendor/addon-fit/
# The source maps are left out; strip the comments that point at them.
sed -i '/^\/\/# sourceMappingURL=/d' vendor/xterm/xterm.js vendor/addon-fit/addon-fit.js
cat > vendor/VERSIONS <<V
@xterm/xterm $XTERM_VERSION (MIT, vendor/xterm/LICENSE)
@xterm/addon-fit $XTERM_FIT_VERSION (MIT, vendor/addon-fit/LICENSE)
V
echo "static/vendor refreshed: xterm $XTERM_VERSION, addon-fit $XTERM_FIT_VERSION"
