#!/usr/bin/env bash
# Install the bare-metal Arm toolchain (GCC, newlib) and QEMU that tests/firmware and the MCU benchmark use.
# Debian/Ubuntu (apt-get), as root or through passwordless sudo. Idempotent: exits 0 quietly when everything is
# there. Where it cannot install (no root/sudo, no apt-get, no network) it says why and exits 1; callers decide:
# `.ci/run` (CI=true) fails, `make test` carries on and the firmware tests skip with the command that enables them.
set -u
PKGS="gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"

installed() {
    command -v arm-none-eabi-gcc >/dev/null 2>&1 && command -v qemu-system-arm >/dev/null 2>&1 || return 1
    local lib
    lib=$(arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 \
        -print-file-name=librdimon.a 2>/dev/null)
    [ -f "$lib" ]
}

installed && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    SUDO="sudo -n"
else
    echo "install_toolchain.sh: need root or passwordless sudo to install $PKGS (sudo $0)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_toolchain.sh: no apt-get; install $PKGS with your package manager" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq >/dev/null 2>&1 &&
      $SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null 2>&1; }

if installed; then
    echo "install_toolchain.sh: installed $PKGS"
else
    echo "install_toolchain.sh: apt-get could not install $PKGS (no network or no such packages?)" >&2
    exit 1
fi
