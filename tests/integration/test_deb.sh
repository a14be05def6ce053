#!/bin/bash
# test_deb: the Debian package. Builds collectd-usage from a copy of the
# source tree with dpkg-buildpackage (as `make deb` does from the release
# tarball), checks its contents and dependencies, installs it, starts the
# stock collectd with the installed plugin against the API simulator, and
# removes the package again. Needs root (dpkg -i) and the build tools
# (dpkg-dev, debhelper, fakeroot): skipped (77) without them. Bounded: the
# build by 240 s, each wait by 15-20 s.
. "$(dirname "$0")/lib.sh"

for tool in dpkg-buildpackage dh dpkg-checkbuilddeps; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: $tool not found (install dpkg-dev and debhelper)"
    exit 77
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: installing the package needs root"
  exit 77
fi
# One package test at a time on a machine (make check and distcheck, or two
# build trees): they install and remove the same package.
exec 9>/tmp/collectd-usage-test-deb.lock
if command -v flock >/dev/null && ! flock -w 200 9; then
  echo "SKIP: another package test holds /tmp/collectd-usage-test-deb.lock"
  exit 77
fi
if dpkg-query -W -f='${Status}' collectd-usage 2>/dev/null | grep -q 'install ok installed'; then
  echo "SKIP: collectd-usage is already installed on this system; not touching it"
  exit 77
fi

it_setup deb
src=$IT_DIR/collectd-usage-0.1.0
mkdir -p "$src"
# A clean copy of the sources (no VCS data, no build trees).
tar -C "$top_srcdir" --exclude=.git --exclude=_build --exclude=autom4te.cache \
  --exclude='*.o' --exclude='*.lo' --exclude=.libs --exclude=.deps \
  --exclude='debian/collectd-usage' --exclude='debian/.debhelper' -cf - . |
  tar -C "$src" -xf -
chmod -R u+w "$src"
if ! (cd "$src" && dpkg-checkbuilddeps) >"$IT_DIR/builddeps.out" 2>&1; then
  echo "SKIP: $(cat "$IT_DIR/builddeps.out")"
  exit 77
fi

PKG_INSTALLED=
deb_cleanup() {
  local rc=$?
  [ -z "$PKG_INSTALLED" ] || dpkg --purge collectd-usage >/dev/null 2>&1
  (exit "$rc")
  it_cleanup
}
trap deb_cleanup EXIT

it_log "dpkg-buildpackage -b (unit tests skipped: nocheck)"
if (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
  timeout 900 dpkg-buildpackage -b -us -uc) >"$IT_DIR/build.out" 2>&1; then
  it_assert_eq "dpkg-buildpackage succeeds" 0 0
else
  tail -n 40 "$IT_DIR/build.out" | sed 's/^/#   /'
  it_assert_eq "dpkg-buildpackage succeeds" 0 1
  it_done
fi
deb=$(ls "$IT_DIR"/collectd-usage_*.deb 2>/dev/null | head -n 1)
it_assert "a collectd-usage .deb is built" test -f "$deb"

dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$IT_DIR/contents"
for f in /usr/lib/collectd/usage.so /usr/share/man/man5/usage.5.gz \
  /etc/collectd/collectd.conf.d/usage.conf \
  /usr/share/doc/collectd-usage/grafana/usage-dashboard.json \
  /usr/share/doc/collectd-usage/prometheus/usage-alerts.yml \
  /usr/share/doc/collectd-usage/prometheus/usage-recording.yml \
  /usr/share/doc/collectd-usage/prometheus/usage-allowances.yml \
  /usr/share/doc/collectd-usage/examples/usage-threshold.conf \
  /usr/share/doc/collectd-usage/copyright; do
  it_assert "the package holds $f" grep -qx "$f" "$IT_DIR/contents"
done
it_assert "no libtool .la file" sh -c "! grep -q '\\.la\$' '$IT_DIR/contents'"
it_assert "depends on collectd-core" \
  sh -c "dpkg-deb -f '$deb' Depends | grep -q 'collectd-core'"
it_assert "the conffile is registered" \
  sh -c "dpkg-deb -I '$deb' conffiles | grep -qx /etc/collectd/collectd.conf.d/usage.conf"

if dpkg -i "$deb" >"$IT_DIR/dpkg.out" 2>&1; then
  PKG_INSTALLED=1
  it_assert_eq "dpkg -i installs it" 0 0
else
  cat "$IT_DIR/dpkg.out" | sed 's/^/#   /'
  it_assert_eq "dpkg -i installs it" 0 1
  it_done
fi
it_assert "the installed example configuration is all comments" \
  sh -c "! grep -v -e '^#' -e '^[[:space:]]*\$' /etc/collectd/collectd.conf.d/usage.conf"
it_assert "the installed man page renders" \
  sh -c "man -l /usr/share/man/man5/usage.5.gz >/dev/null 2>&1 || zcat /usr/share/man/man5/usage.5.gz | grep -q '^\\.'"
it_assert "the installed dashboard is JSON" \
  python3 -c 'import json,sys; json.load(open(sys.argv[1]))' \
  /usr/share/doc/collectd-usage/grafana/usage-dashboard.json

# The stock collectd, the installed plugin (its PluginDir), a CCC source.
it_start_sim --ccc-services 1 --ccc-users 2 --seed 3
svc=$(curl -sf "$SIM_URL/_sim/ccc/services" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["serviceGuid"])')
cat >"$IT_DIR/collectd.conf" <<CONF
Interval 1
BaseDir "$IT_DIR"
PIDFile "$IT_DIR/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$IT_DIR/collectd.log"
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$IT_DIR/csv"
</Plugin>
Include "/etc/collectd/collectd.conf.d/usage.conf"
LoadPlugin usage
<Plugin usage>
  <Exporter>
    Address "127.0.0.1"
    Port "$EXPORTER_PORT"
  </Exporter>
  <CCC "acme">
    URL "$SIM_URL"
    BearerToken "token"
    Interval 1
    <Service "$svc">
    </Service>
  </CCC>
</Plugin>
CONF
"$COLLECTD" -f -C "$IT_DIR/collectd.conf" >"$IT_DIR/collectd.out" 2>&1 &
COLLECTD_PID=$!
it_assert "the installed plugin serves /metrics" it_until 20 curl -sf -o /dev/null "$METRICS_URL"
it_assert "collectd loaded usage.so from /usr/lib/collectd" \
  grep -q 'plugin "usage" successfully loaded' "$IT_DIR/collectd.log"
it_assert "the CCC source is up" it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1 20
it_assert "the build info is exported" \
  sh -c "curl -sf '$METRICS_URL' | grep -q '^usage_exporter_build_info{version=\"0.1.0\"} 1'"
it_stop_collectd

if dpkg --purge collectd-usage >"$IT_DIR/purge.out" 2>&1; then
  PKG_INSTALLED=
  it_assert "the package purges cleanly" sh -c "[ ! -e /usr/lib/collectd/usage.so ] && [ ! -e /etc/collectd/collectd.conf.d/usage.conf ]"
else
  it_assert_eq "dpkg --purge" 0 1
fi
it_done
