#!/usr/bin/env bash
# install-deps.sh - installs the Debian packages attnc needs, if missing.
# Why each is needed: see README.md, "Dependencies".
set -euo pipefail
PKGS="cmake make gcc g++ binutils flex bison libcriterion-dev llvm-19-dev clang-19 libclang-rt-19-dev python3 python3-numpy"
# cross-compiling for AArch64: its glibc headers (attnc's AArch64 runtime is
# built against them), the cross linker and qemu (the cross_run test)
PKGS="$PKGS libc6-dev-arm64-cross gcc-aarch64-linux-gnu qemu-user"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
