#!/bin/sh
# Debian packages the Python wheels need but do not ship (open3d needs libusb-1.0), and the
# optional headless Chromium that test/test_eval_report_html.py renders index.html with (the
# test skips without it). Run as root, whatever is missing is installed (quietly); otherwise a
# missing library is an error and a missing Chromium only a note.
has_libusb() { ldconfig -p | grep -q 'libusb-1.0.so.0'; }
missing=''
has_libusb || missing="$missing libusb-1.0-0"
optional=''
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || optional="$optional chromium"
[ -z "$missing$optional" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages:$missing$optional"
  apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
      >/dev/null 2>&1
  }
  # The package lists may be stale or absent (fresh containers): update once and retry; an
  # unavailable Chromium must not keep the required library out.
  apt_install $missing $optional \
    || { apt-get update -qq >/dev/null 2>&1; apt_install $missing $optional; } \
    || apt_install $missing || true
  if [ -n "$missing" ] && ! has_libusb; then
    echo "could not install:$missing" >&2
    exit 1
  fi
  exit 0
fi
[ -n "$optional" ] && echo "note: no headless Chromium, the report screenshot test is skipped;" \
  "to run it: sudo apt-get install -y$optional"
if [ -n "$missing" ]; then
  echo "missing system libraries; run: sudo apt-get install -y$missing" >&2
  exit 1
fi
exit 0
