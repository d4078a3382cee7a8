#!/bin/sh
# Debian libraries the Python wheels need but do not ship (open3d needs libusb-1.0).
missing=''
ldconfig -p | grep -q 'libusb-1.0.so.0' || missing="$missing libusb-1.0-0"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages:$missing"
  (apt-get install -y -qq $missing || { apt-get update -qq && apt-get install -y -qq $missing; }) >/dev/null
else
  echo "missing system libraries; run: sudo apt-get install -y$missing" >&2
  exit 1
fi
