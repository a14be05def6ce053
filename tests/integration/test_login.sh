#!/bin/bash
# test_login: the real collectd signs in by itself (<Login>) to the
# simulator's short-lived tokens (--token-ttl 3): a Billing block with the
# generic form (lifetime from the JWT's exp) and a CCC block with Preset
# "ccc", both at Interval 1. No data request fails, tokens are renewed at
# about 80% of their lifetime, a revoked token recovers within a scrape, and
# no password or token reaches the log or /metrics.
. "$(dirname "$0")/lib.sh"

it_setup login
it_start_sim --login --token-ttl 3 --login-password 'pw-SECRET-1' \
  --billing-records 300 --ccc-services 2 --ccc-users 3 --seed 5

printf 'pw-SECRET-1\n' >"$IT_DIR/password"
{
  cat <<CONF
  <Billing "acme-billing">
    URL "$SIM_URL"
    InitialLookback 4320000
    Interval 1
    Timeout 5000
    <Login>
      URL "/authenticate"
      Field "username" "monitor"
      FieldFile "password" "$IT_DIR/password"
      TokenField "token"
    </Login>
  </Billing>
CONF
  curl -sf "$SIM_URL/_sim/ccc/services" | python3 -c '
import json, sys
print("  <CCC \"acme\">")
print("    URL \"%s\"" % sys.argv[1])
print("    Interval 1")
print("    <Login>")
print("      Preset \"ccc\"")
print("      User \"monitor\"")
print("      PasswordFile \"%s/password\"" % sys.argv[2])
print("      TTL 3")
print("    </Login>")
for s in json.load(sys.stdin):
    print("    <Service \"%s\">" % s["serviceGuid"])
    print("    </Service>")
print("  </CCC>")' "$SIM_URL" "$IT_DIR"
} >"$IT_DIR/usage.conf"

sim_logins() { curl -sf "$SIM_URL/_sim/logins" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
errors() { it_sum "usage_scrape_errors_total{source=\"$1\"}" | python3 -c 'print(int(float(input())))'; }

it_start_collectd "$IT_DIR/usage.conf"
it_assert "billing up" it_wait_value 'usage_source_up{source="acme-billing",kind="billing"}' 1 20
it_assert "ccc up" it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1 20
t0=$(date +%s.%N)
b0=$(sim_logins billing)
c0=$(sim_logins ccc)
r0=$(sim_logins tokenRejected)
down=0
samples=0
# sample /metrics for ~15 s: both sources stay up
while python3 -c "import sys,time; sys.exit(0 if time.time() - $t0 < 15 else 1)"; do
  sleep 0.5
  it_metrics || continue
  samples=$((samples + 1))
  grep -q '^usage_source_up{source="acme-billing",kind="billing"} 1$' "$IT_DIR/last.prom" || down=$((down + 1))
  grep -q '^usage_source_up{source="acme",kind="ccc"} 1$' "$IT_DIR/last.prom" || down=$((down + 1))
done
t=$(python3 -c "import time; print(time.time() - $t0)")
b=$(($(sim_logins billing) - b0))
c=$(($(sim_logins ccc) - c0))
it_log "in ${t}s ($samples samples): billing $b sign-ins, ccc $c sign-ins"
it_assert_eq "usage_source_up stayed 1" 0 "$down"
it_assert_eq "no data request refused" "$r0" "$(sim_logins tokenRejected)"
it_assert_eq "no scrape errors (billing)" 0 "$(errors acme-billing)"
it_assert_eq "no scrape errors (ccc)" 0 "$(errors acme)"
# a token lives 2-3 s and is renewed at 80%, at the next 1 s scrape: one
# sign-in every 2 to 3 s; allow for the scrape rhythm
in_range() { python3 -c "import sys; n,t=$1,$t; sys.exit(0 if t/4.5 <= n <= t/1.5 + 1 else 1)"; }
it_assert "billing sign-ins close to runtime / (0.8 x lifetime) ($b)" in_range "$b"
it_assert "ccc sign-ins close to runtime / (0.8 x lifetime) ($c)" in_range "$c"
has() { it_metrics && grep -q "^$1 " "$IT_DIR/last.prom"; }
it_assert "usage_login_total{result=\"ok\"} published" has 'usage_login_total{source="acme",result="ok"}'
it_assert "usage_login_token_expiry_seconds published" has 'usage_login_token_expiry_seconds{source="acme-billing"}'

# revoked tokens: the next request gets 401, the plugin signs in again once
# and repeats it; the scrape stays good
r1=$(sim_logins tokenRejected)
curl -sf -X POST "$SIM_URL/_sim/login/revoke" >/dev/null
it_assert "a revoked token was refused" it_until 5 sh -c "[ \$(curl -sf '$SIM_URL/_sim/logins' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"tokenRejected\"])') -gt $r1 ]"
sleep 3
it_assert_eq "still no scrape errors after the revocation (billing)" 0 "$(errors acme-billing)"
it_assert_eq "still no scrape errors after the revocation (ccc)" 0 "$(errors acme)"
it_assert "billing up after the revocation" it_wait_value 'usage_source_up{source="acme-billing",kind="billing"}' 1 3
it_assert "ccc up after the revocation" it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1 3

# wrong password: reason auth, the source goes down, no secret logged
printf 'wrong-SECRET\n' >"$IT_DIR/password.new" && mv "$IT_DIR/password.new" "$IT_DIR/password"
curl -sf -X POST "$SIM_URL/_sim/login/revoke" >/dev/null
it_assert "a refused sign-in counts reason auth" it_until 10 sh -c \
  "curl -sf '$METRICS_URL' | grep -q '^usage_scrape_errors_total{source=\"acme\",reason=\"auth\"} [1-9]'"
it_assert "the log names the status of the refused sign-in" grep -q 'sign-in at .*HTTP 401' "$IT_DIR/collectd.log"

it_metrics
it_assert "no password or token in the log or on /metrics" sh -c \
  "! grep -q -e SECRET -e 'sess-' -e 'eyJ' '$IT_DIR/collectd.log' '$IT_DIR/last.prom'"
it_stop_collectd
it_done
