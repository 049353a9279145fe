#!/usr/bin/env bash
# Chooses where simrs's Rust dependencies come from.
#
# Online (the crate registry answers): nothing to do; cargo builds the ordinary way.
# Offline / air-gapped (it does not): point `crates-io` at Debian's packaged crate sources
# (/usr/share/cargo/registry, from librust-*-dev) through a directory source written to
# simrs/.cargo/config.toml, which git ignores. The same Cargo.toml serves both.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CRATE="$ROOT/simrs"
CONFIG="$CRATE/.cargo/config.toml"
DEBIAN_REGISTRY="${OPPEN_DEBIAN_CARGO_REGISTRY:-/usr/share/cargo/registry}"
DEBIAN_CRATES=(librust-pyo3-dev librust-rand-dev librust-rand-chacha-dev librust-rand-distr-dev
               librust-rayon-dev librust-proptest-dev)

command -v cargo >/dev/null || { echo "error: cargo not found; install a Rust toolchain (1.70+)" >&2; exit 1; }

# Probe the registry from a scratch copy of the manifest, so a working tree is never touched.
probe_dir="$(mktemp -d)"; trap 'rm -rf "$probe_dir"' EXIT
mkdir -p "$probe_dir/src" && cp "$CRATE/Cargo.toml" "$probe_dir/" && touch "$probe_dir/src/lib.rs"
if (cd "$probe_dir" && CARGO_NET_RETRY=0 CARGO_HTTP_TIMEOUT=15 timeout 60 \
      cargo generate-lockfile >/dev/null 2>&1); then
  rm -f "$CONFIG"
  echo "cargo: crate registry reachable; building online"
  exit 0
fi

echo "cargo: crate registry unreachable; using Debian's packaged crates (offline build)"
missing=()
for pkg in "${DEBIAN_CRATES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
    echo "error: need root (or sudo) to apt-get install: ${missing[*]}" >&2; exit 1
  fi
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[[ -d "$DEBIAN_REGISTRY" ]] || { echo "error: $DEBIAN_REGISTRY not found" >&2; exit 1; }

mkdir -p "$(dirname "$CONFIG")"
cat >"$CONFIG" <<TOML
# Written by scripts/configure-cargo.sh because the crate registry was unreachable.
[source.crates-io]
replace-with = "debian-packages"

[source.debian-packages]
directory = "$DEBIAN_REGISTRY"

[net]
offline = true
TOML
