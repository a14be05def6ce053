#!/bin/bash
# test_login: the real collectd signs in by itself (<Login>) to the
# simulator's short-lived tokens (--token-ttl 2): a Billing block with the
# generic form (lifetime from the JWT's exp), a CCC block with Preset "ccc"
# and a Billing block with Preset "oauth2", all at Interval 1, for 20 token
# lifetimes. No data request fails, tokens are renewed at about 80% of their
# lifetime, a revoked token recovers within a scrape, a wrong password backs
# off (sign-in attempts grow slowly, not every scrape) and fixing the file
# recovers without a restart; the login endpoint down (503, then dropped
# connections) turns the blocks down with reason login, backs off and
# recovers by itself; a login server whose clock is 10 minutes ahead or
# behind changes nothing (no data request refused); no password or token
# reaches the log, /metrics or the status page.
. "$(dirname "$0")/lib.sh"

it_setup login
TTL=2
RUN=$((20 * TTL))
it_start_sim --login --token-ttl $TTL --login-password 'pw-SECRET-1' \
  --billing-records 300 --ccc-services 2 --ccc-users 3 --seed 5

printf 'pw-SECRET-1\n' >"$IT_DIR/password"
printf 'sim-client-secret\n' >"$IT_DIR/client.secret"
# ScrapeTimeout 10: on a busy machine a scrape may take longer than the
# 1 s interval; the default deadline (the Interval) would turn it down.
{
  cat <<CONF
  <Billing "acme-billing">
    URL "$SIM_URL"
    InitialLookback 4320000
    Interval 1
    ScrapeTimeout 10
    Timeout 5000
    <Login>
      URL "/authenticate"
      Field "username" "monitor"
      FieldFile "password" "$IT_DIR/password"
      TokenField "token"
    </Login>
  </Billing>
  <Billing "acme-oauth">
    URL "$SIM_URL"
    InitialLookback 4320000
    Interval 1
    ScrapeTimeout 10
    Timeout 5000
    <Login>
      Preset "oauth2"
      URL "$SIM_URL/oauth2/token"
      ClientID "sim-client"
      ClientSecretFile "$IT_DIR/client.secret"
    </Login>
  </Billing>
CONF
  curl -sf "$SIM_URL/_sim/ccc/services" | python3 -c '
import json, sys
print("  <CCC \"acme\">")
print("    URL \"%s\"" % sys.argv[1])
print("    Interval 1")
print("    ScrapeTimeout 10")
print("    <Login>")
print("      Preset \"ccc\"")
print("      User \"monitor\"")
print("      PasswordFile \"%s/password\"" % sys.argv[2])
print("      TTL %s" % sys.argv[3])
print("    </Login>")
for s in json.load(sys.stdin):
    print("    <Service \"%s\">" % s["serviceGuid"])
    print("    </Service>")
print("  </CCC>")' "$SIM_URL" "$IT_DIR" "$TTL"
} >"$IT_DIR/usage.conf"

sim_logins() { curl -sf "$SIM_URL/_sim/logins" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
errors() { it_sum "usage_scrape_errors_total{source=\"$1\"}" | python3 -c 'print(int(float(input())))'; }

it_start_collectd "$IT_DIR/usage.conf"
it_assert "billing up" it_wait_value 'usage_source_up{source="acme-billing",kind="billing"}' 1 20
it_assert "ccc up" it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1 20
it_assert "oauth2 up" it_wait_value 'usage_source_up{source="acme-oauth",kind="billing"}' 1 20
t0=$(date +%s.%N)
b0=$(sim_logins billing)
c0=$(sim_logins ccc)
o0=$(sim_logins oauth2)
r0=$(sim_logins tokenRejected)
down=0
samples=0
# sample /metrics for 20 token lifetimes: every source stays up (the clock
# is bash's: a python3 start can take seconds on a busy machine)
end=$((${EPOCHREALTIME/./} + RUN * 1000000))
while [ "${EPOCHREALTIME/./}" -lt "$end" ]; do
  sleep 0.5
  it_metrics || continue
  samples=$((samples + 1))
  grep -q '^usage_source_up{source="acme-billing",kind="billing"} 1$' "$IT_DIR/last.prom" || down=$((down + 1))
  grep -q '^usage_source_up{source="acme",kind="ccc"} 1$' "$IT_DIR/last.prom" || down=$((down + 1))
  grep -q '^usage_source_up{source="acme-oauth",kind="billing"} 1$' "$IT_DIR/last.prom" || down=$((down + 1))
done
t=$(python3 -c "import time; print(time.time() - $t0)")
b=$(($(sim_logins billing) - b0))
c=$(($(sim_logins ccc) - c0))
o=$(($(sim_logins oauth2) - o0))
it_log "in ${t}s ($samples samples): billing $b sign-ins, ccc $c, oauth2 $o"
it_assert "enough samples of /metrics to tell ($samples)" test "$samples" -ge 10
it_assert_eq "usage_source_up stayed 1" 0 "$down"
it_assert_eq "no data request refused" "$r0" "$(sim_logins tokenRejected)"
it_assert_eq "no scrape errors (billing)" 0 "$(errors acme-billing)"
it_assert_eq "no scrape errors (ccc)" 0 "$(errors acme)"
it_assert_eq "no scrape errors (oauth2)" 0 "$(errors acme-oauth)"
bad() {
  it_metrics && python3 -c 'import sys
print(int(sum(float(l.split()[-1]) for l in open(sys.argv[1])
              if l.startswith("usage_scrape_requests_total{") and "code=\"200\"" not in l)))' "$IT_DIR/last.prom"
}
it_assert_eq "every data request answered 200" 0 "$(bad)"
# a token lives TTL s (up to 1 s less: whole seconds) and is renewed at 80%,
# at the next 1 s scrape; allow for the scrape rhythm
in_range() { python3 -c "import sys; n,t=$1,$t; sys.exit(0 if t/($TTL*1.5) <= n <= t/($TTL*0.4) + 1 else 1)"; }
it_assert "billing sign-ins close to runtime / (0.8 x lifetime) ($b)" in_range "$b"
it_assert "ccc sign-ins close to runtime / (0.8 x lifetime) ($c)" in_range "$c"
it_assert "oauth2 sign-ins close to runtime / (0.8 x lifetime) ($o)" in_range "$o"
PAGE_URL=${METRICS_URL%/metrics}/
it_assert "the status page shows the sign-in" sh -c "curl -sf '$PAGE_URL' | grep -q 'signed in, expires in [0-9]* s'"
has() { it_metrics && grep -q "^$1 " "$IT_DIR/last.prom"; }
it_assert "usage_login_total{result=\"ok\"} published" has 'usage_login_total{source="acme",result="ok"}'
it_assert "usage_login_token_expiry_seconds published" has 'usage_login_token_expiry_seconds{source="acme-billing"}'

# revoked tokens: the next request gets 401, the plugin signs in again once
# and repeats it; the scrape stays good
r1=$(sim_logins tokenRejected)
# (with 2 s tokens a block may renew before it reuses one: revoke again
# until a live token was refused)
it_assert "a revoked token was refused" it_until 4 sh -c "curl -sf -X POST '$SIM_URL/_sim/login/revoke' >/dev/null; sleep 0.8; [ \$(curl -sf '$SIM_URL/_sim/logins' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"tokenRejected\"])') -gt $r1 ]"
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
# backoff: over 8 s (8 scrapes of each of the two blocks) the sign-in
# attempts pause 1, 2, 4 s (+- jitter): at most 5 per block, not 8
f0=$(sim_logins refused)
sleep 8
f=$(($(sim_logins refused) - f0))
it_log "8 s with a wrong password: $f refused sign-ins (two blocks)"
it_assert "a wrong password backs off ($f refused sign-ins in 8 s, two blocks)" test "$f" -le 10
it_assert "the status page shows the failed sign-in" sh -c "curl -sf '$PAGE_URL' | grep -q 'sign-in failed, next attempt in [0-9]* s'"
it_assert "the oauth2 block is not disturbed" it_wait_value 'usage_source_up{source="acme-oauth",kind="billing"}' 1 3
# the password file is fixed: both blocks recover without a restart (the
# pause is at most 16 s by now)
printf 'pw-SECRET-1\n' >"$IT_DIR/password.new" && mv "$IT_DIR/password.new" "$IT_DIR/password"
it_assert "billing recovers without a restart" it_wait_value 'usage_source_up{source="acme-billing",kind="billing"}' 1 30
it_assert "ccc recovers without a restart" it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1 30

# the login endpoint down: first 503, then connections closed without an
# answer; tokens run out and every block goes down with reason login, never
# auth. The attempts back off: pauses of 1, 2, 4, ... s (+- jitter) make
# at most log2(T + 1) + 2 attempts per block in T seconds, where a sign-in
# every 1 s scrape would be T.
# Tokens of 8 s for this part: a 2 s token lasts 0.4 s past its renewal, and
# a request that a busy machine delays longer is refused (401); the block
# signs in again and repeats it, and if that token's request is delayed past
# its end too, the refusal of a token just issued counts as auth, rightly.
# Each block signs in once more, with the longer lifetime, before the
# endpoint goes down (the CCC block keeps renewing at 80% of its TTL 2).
logins_now() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d['billing'], d['ccc'], d['oauth2'])"; }
read -r lb lc lo <<<"$(curl -sf -X POST "$SIM_URL/_sim/login/ttl?seconds=8" | logins_now)"
signed_in_again() { read -r b c o <<<"$(curl -sf "$SIM_URL/_sim/logins" | logins_now)" && [ "$b" -gt "$lb" ] && [ "$c" -gt "$lc" ] && [ "$o" -gt "$lo" ]; }
it_assert "login down: every block holds a token of the longer lifetime" it_until 30 signed_in_again
reason_count() { it_sum "usage_scrape_errors_total{source=\"$1\",reason=\"$2\"}" | python3 -c 'print(int(float(input())))'; }
for b in acme-billing acme acme-oauth; do
  eval "l0_${b//-/_}=$(reason_count $b login) a0_${b//-/_}=$(reason_count $b auth)"
done
t0=$(date +%s.%N)
d0=$(sim_logins whileDown)
curl -sf -X POST "$SIM_URL/_sim/login/down?on=1" >/dev/null
it_assert "login down: billing down" it_wait_value 'usage_source_up{source="acme-billing",kind="billing"}' 0 30
# 4 s of 503 answers, then dropped connections for 4 s at least and until
# a sign-in has met one
sleep 4
curl -sf -X POST "$SIM_URL/_sim/login/down?on=1&mode=drop" >/dev/null
sleep 4
it_assert "login down: the log says the connection closed without an answer" \
  it_until 30 grep -q 'sign-in at .*failed: connection closed by the server before any answer' "$IT_DIR/collectd.log"
d=$(($(sim_logins whileDown) - d0))
t=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
it_log "$t s with the login endpoint down: $d sign-in attempts (three blocks)"
it_assert "login down: the sign-ins back off ($d attempts in $t s, three blocks)" \
  python3 -c "import math; d, t = $d, $t; exit(0 if 3 <= d <= 3 * (math.log2(t + 1) + 2) else 1)"
for b in acme-billing acme acme-oauth; do
  eval "l0=\$l0_${b//-/_} a0=\$a0_${b//-/_}"
  l1=$(reason_count $b login) a1=$(reason_count $b auth)
  it_assert "login down: $b counts reason login" test "$l1" -gt "$l0"
  it_assert_eq "login down: $b counts no auth error" "$a0" "$a1"
done
it_assert "login down: the log names the 503" grep -q 'sign-in at .*HTTP 503; next attempt in' "$IT_DIR/collectd.log"
# back to 2 s tokens for what follows (no token is issued while down)
curl -sf -X POST "$SIM_URL/_sim/login/ttl?seconds=$TTL" >/dev/null
curl -sf -X POST "$SIM_URL/_sim/login/down?on=0" >/dev/null
it_assert "login back: billing recovers by itself" it_wait_value 'usage_source_up{source="acme-billing",kind="billing"}' 1 20
it_assert "login back: ccc recovers by itself" it_wait_value 'usage_source_up{source="acme",kind="ccc"}' 1 20
it_assert "login back: oauth2 recovers by itself" it_wait_value 'usage_source_up{source="acme-oauth",kind="billing"}' 1 20

# clock skew: the login server's clock 10 minutes ahead, then behind (the
# JWT's iat and exp move, the token still lives 2 s). Read as exp - now the
# token would live 10 minutes too long (refused after 2 s) or be expired on
# arrival; over 4 lifetimes each, no data request is refused.
skew_run() {
  curl -sf -X POST "$SIM_URL/_sim/login/clock-skew?seconds=$1" >/dev/null
  local r0 e0 b0 n t0 t
  sleep 1 # a token of the old clock may still be in use
  r0=$(sim_logins tokenRejected)
  e0=$(errors acme-billing)
  t0=$(date +%s.%N)
  b0=$(sim_logins billing)
  sleep $((4 * TTL))
  n=$(($(sim_logins billing) - b0))
  t=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
  it_log "clock skew $1 s: $n billing sign-ins in $t s"
  it_assert_eq "clock skew $1 s: no data request refused" "$r0" "$(sim_logins tokenRejected)"
  it_assert_eq "clock skew $1 s: no scrape errors (billing)" "$e0" "$(errors acme-billing)"
  # renewed (not kept for 10 minutes), at most once a 1 s scrape
  it_assert "clock skew $1 s: tokens renewed ($n in $t s)" \
    python3 -c "n, t = $n, $t; exit(0 if 3 <= n <= t + 2 else 1)"
}
skew_run 600
skew_run -600
curl -sf -X POST "$SIM_URL/_sim/login/clock-skew?seconds=0" >/dev/null

it_metrics
it_assert "no password or token in the log or on /metrics" sh -c \
  "! grep -q -e SECRET -e 'sess-' -e 'eyJ' '$IT_DIR/collectd.log' '$IT_DIR/last.prom'"
it_stop_collectd
it_done
