#!/usr/bin/env bash
# Set up bnnkws on a fresh Debian 12 machine, then run one job:
#   bash tools/bootstrap.sh demo [ARGS...]   the main job, end to end
#   bash tools/bootstrap.sh test [ARGS...]   the test suite (what CI runs)
#   bash tools/bootstrap.sh setup            set up only
# Idempotent: Debian packages are installed only when missing, the virtual
# environment (.venv) is reused, and the project is reinstalled only when
# pyproject.toml changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

job="${1:-setup}"
shift || true

DEBIAN_PACKAGES=(
  python3 python3-venv python3-dev gcc libc6-dev make
  gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
  espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts festvox-kdlpc16k sox
  libsndfile1 valgrind
)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.bnnkws-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing bnnkws and its pinned dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade "pip>=23"
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" >"$stamp"
fi

case "$job" in
  setup) echo "bootstrap: ready (.venv/bin/bnnkws --help)" ;;
  demo) exec .venv/bin/bnnkws demo "$@" ;;
  test) exec .venv/bin/python -m pytest -q "$@" ;;
  *) echo "bootstrap: unknown job '$job' (expected demo, test or setup)" >&2; exit 2 ;;
esac
