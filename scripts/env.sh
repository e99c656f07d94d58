# Sourced by the scripts and tests: where things are.
vhdup_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
vhdup_azurite_version=$(cat "$vhdup_root/third_party/azurite/VERSION")
VHDUP_AZURITE_BIN=${VHDUP_AZURITE_BIN:-${VHDUP_CACHE:-$HOME/.cache/vhdup}/azurite-$vhdup_azurite_version/node_modules/.bin/azurite-blob}
export VHDUP_AZURITE_BIN
