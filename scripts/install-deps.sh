#!/bin/sh
# Installs, with apt-get, every Debian package usher needs to build, test and
# benchmark. Idempotent: packages already present are not touched, and apt's
# index is refreshed only when something is missing.
set -eu

build="build-essential cmake pkg-config git ca-certificates
  libcurl4-openssl-dev libjansson-dev libyaml-dev libpq-dev libhiredis-dev
  libsystemd-dev libmicrohttpd-dev libsqlite3-dev libssl-dev libzstd-dev
  zlib1g-dev libpcre2-dev libgnutls28-dev"
test="libcmocka-dev nginx-light openssl curl prometheus procps
  systemd clang libclang-rt-14-dev python3 apache2-utils
  postgresql redis-server redis-tools memcached prometheus-alertmanager
  python3-aiosmtpd python3-yaml"
demo="python3 curl"
bench="prometheus-blackbox-exporter prometheus-postgres-exporter
  prometheus-redis-exporter nginx-light libcurl4-openssl-dev python3 linux-perf
  zstd"

want="$build"
case "${1:-all}" in
  build) ;;
  demo) want="$build $demo" ;;
  test) want="$build $test" ;;
  all) want="$build $test $bench" ;;
  *) echo "usage: $0 [build|demo|test|all]" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Packages that start services on install (nginx, prometheus) are kept from
# doing so where we can: the tests start their own instances on free ports.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 0755 /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends $missing
