#!/usr/bin/env bash
# Install what headless MuJoCo rendering (sim/render.py, MUJOCO_GL=egl) needs on Debian/Ubuntu: the GL vendor
# library and Mesa's EGL + software rasteriser (llvmpipe), which render without a GPU or display.
# Idempotent: exits 0 quietly when they are there. Without root/sudo or apt-get it warns and exits 0, so the
# rendering tests skip with the reason, except under CI=true, where a missing library fails the run.
set -u
PKGS="libegl1 libegl-mesa0 libgl1-mesa-dri"

installed() {
    ldconfig -p 2>/dev/null | grep -q "libEGL.so.1 " && ldconfig -p 2>/dev/null | grep -q "libEGL_mesa.so.0 " &&
        ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1
}

missing() {
    if [ "${CI:-}" = "true" ]; then
        echo "install_headless_gl.sh: $1; CI=true needs them" >&2
        exit 1
    fi
    echo "install_headless_gl.sh: $1; rendering tests will skip" >&2
    exit 0
}

installed && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    SUDO="sudo -n"
else
    missing "need root or passwordless sudo to install $PKGS"
fi
command -v apt-get >/dev/null 2>&1 || missing "no apt-get; install $PKGS with your package manager"

export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq >/dev/null 2>&1 &&
      $SUDO apt-get install -y -qq --no-install-recommends $PKGS >/dev/null 2>&1; }

if installed; then
    echo "install_headless_gl.sh: installed $PKGS"
else
    missing "could not install $PKGS"
fi
exit 0
