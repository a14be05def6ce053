#!/usr/bin/env python3
# make_dashboard.py: writes usage-dashboard.json, the Grafana dashboard of
# the collectd usage plugin's metrics, to stdout. The JSON is the shipped
# artefact; this script is how it is changed:
#   python3 contrib/grafana/make_dashboard.py > contrib/grafana/usage-dashboard.json
# tests/contrib/check_dashboard.py checks that the two agree.
import json
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
SRC = 'source=~"$source"'
SVC = 'source=~"$source", service=~"$service"'
RP = 'source=~"$source", rate_plan=~"$rate_plan"'
ZONE = 'source=~"$source", rate_plan=~"$rate_plan", zone=~"$zone"'

CCC_STATES = ["Blocked", "AccountCancelled", "AccountSuspended",
              "Provisioning", "TrialExpired", "TrialActive", "DemoAccount",
              "CertifiedSecure"]
ACTIVE = {"TrialActive", "DemoAccount", "CertifiedSecure"}

panels = []
_next_id = [1]
_y = [0]


def _id():
    i = _next_id[0]
    _next_id[0] += 1
    return i


def row(title):
    panels.append({"type": "row", "id": _id(), "title": title,
                   "collapsed": False, "panels": [],
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": _y[0]}})
    _y[0] += 1
    _x[0] = 0


_x = [0]


def _place(w, h):
    if _x[0] + w > 24:
        _x[0] = 0
        _y[0] += _h[0]
        _h[0] = 0
    pos = {"h": h, "w": w, "x": _x[0], "y": _y[0]}
    _x[0] += w
    _h[0] = max(_h[0], h)
    return pos


_h = [0]


def newline():
    if _x[0]:
        _y[0] += _h[0]
        _x[0] = 0
        _h[0] = 0


def target(expr, legend="", instant=False, ref="A", fmt=None):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend,
         "refId": ref, "range": not instant, "instant": instant}
    if fmt:
        t["format"] = fmt
    return t


def panel(kind, title, desc, unit, targets, w=12, h=8, options=None,
          custom=None, mappings=None, extra=None):
    refs = "ABCDEFGH"
    tl = []
    for i, t in enumerate(targets):
        t = dict(t)
        t["refId"] = refs[i]
        tl.append(t)
    p = {"type": kind, "id": _id(), "title": title, "description": desc,
         "datasource": DS, "gridPos": _place(w, h), "targets": tl,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
         "options": options or {}}
    if custom:
        p["fieldConfig"]["defaults"]["custom"] = custom
    if mappings:
        p["fieldConfig"]["defaults"]["mappings"] = mappings
    if extra:
        p["fieldConfig"]["defaults"].update(extra)
    panels.append(p)
    return p


TS_OPTS = {"legend": {"displayMode": "table", "placement": "bottom",
                      "calcs": ["lastNotNull", "max"]},
           "tooltip": {"mode": "multi", "sort": "desc"}}
STACK = {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30}
BAR_OPTS = {"displayMode": "gradient", "orientation": "horizontal",
            "showUnfilled": True,
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                              "values": False}}
STAT_OPTS = {"colorMode": "background", "graphMode": "none",
             "reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                               "values": False}}

# --- health -----------------------------------------------------------------
row("Health of the usage plugin")
panel("stat", "Source up",
      "usage_source_up: 1 when every request of the last scrape of the "
      "source was answered with data or a documented refusal, 0 on a "
      "transport error, timeout, HTTP 5xx, 401/403, an unparseable body or "
      "an incomplete page set.", "short",
      [target('usage_source_up{%s}' % SRC, "{{source}} ({{kind}})",
              instant=True)],
      w=6, options=STAT_OPTS,
      mappings=[{"type": "value", "options": {
          "0": {"text": "DOWN", "color": "red", "index": 0},
          "1": {"text": "UP", "color": "green", "index": 1}}}],
      extra={"thresholds": {"mode": "absolute", "steps": [
          {"color": "red", "value": None}, {"color": "green", "value": 1}]}})
panel("stat", "Since the last good scrape",
      "Time since the end of the last fully successful scrape of each "
      "source (usage_last_success_timestamp_seconds). More than a few "
      "scrape intervals means the figures are stale.", "s",
      [target('time() - usage_last_success_timestamp_seconds{%s}' % SRC,
              "{{source}}", instant=True)],
      w=6, options=STAT_OPTS,
      extra={"thresholds": {"mode": "absolute", "steps": [
          {"color": "green", "value": None},
          {"color": "orange", "value": 3600}]}})
panel("timeseries", "Scrape duration",
      "Duration of the last scrape of each source "
      "(usage_scrape_duration_seconds), all entities and pages included.",
      "s", [target('usage_scrape_duration_seconds{%s}' % SRC, "{{source}}")],
      options=TS_OPTS)
panel("timeseries", "Scrape errors by reason",
      "Failed or refused scrape entities per second, by source and reason "
      "(usage_scrape_errors_total; the reasons are listed in usage(5)).",
      "short",
      [target('sum by (source, reason) (rate(usage_scrape_errors_total{%s}'
              '[$__rate_interval]))' % SRC, "{{source}} {{reason}}")],
      options=TS_OPTS, custom=STACK)
panel("timeseries", "Upstream requests by HTTP status",
      "Upstream HTTP requests answered per second, by source and status "
      "code (usage_scrape_requests_total).", "reqps",
      [target('sum by (source, code) (rate(usage_scrape_requests_total{%s}'
              '[$__rate_interval]))' % SRC, "{{source}} {{code}}")],
      options=TS_OPTS, custom=STACK)
newline()

# --- CCC ----------------------------------------------------------------------
row("CCC secure messaging")
state_expr = " or ".join(
    'usage_ccc_service_status{%s, status="%s"} * %d' % (SVC, s, i + 1)
    for i, s in enumerate(CCC_STATES))
panel("state-timeline", "Service status",
      "The state of each CCC service over time (usage_ccc_service_status): "
      "green for the active states (TrialActive, DemoAccount, "
      "CertifiedSecure), red or orange for the others.", "short",
      [target('sum by (source, service) ((%s) > 0)' % state_expr,
              "{{service}}")],
      w=24, h=6,
      options={"showValue": "auto", "mergeValues": True,
               "legend": {"displayMode": "list", "placement": "bottom"}},
      mappings=[{"type": "value", "options": {
          str(i + 1): {"text": s, "index": i,
                       "color": "green" if s in ACTIVE else
                       ("orange" if s in ("Provisioning", "TrialExpired")
                        else "red")}
          for i, s in enumerate(CCC_STATES)}}])
panel("timeseries", "Users by kind",
      "Users of each CCC service by kind: professional, guest, disabled and "
      "unregistered (usage_ccc_service_*_users); the total is "
      "usage_ccc_service_users.", "short",
      [target('usage_ccc_service_pro_users{%s}' % SVC, "{{service}} pro"),
       target('usage_ccc_service_guest_users{%s}' % SVC, "{{service}} guest"),
       target('usage_ccc_service_disabled_users{%s}' % SVC,
              "{{service}} disabled"),
       target('usage_ccc_service_unregistered_users{%s}' % SVC,
              "{{service}} unregistered"),
       target('usage_ccc_service_users{%s}' % SVC, "{{service}} total")],
      options=TS_OPTS)
panel("timeseries", "Feature usage",
      "Use of the optional features of each CCC service "
      "(usage_ccc_service_feature_usage, by feature).", "short",
      [target('usage_ccc_service_feature_usage{%s}' % SVC,
              "{{service}} {{feature}}")],
      options=TS_OPTS)
panel("timeseries", "Messages and attachments",
      "Message and attachment totals of each CCC service "
      "(usage_ccc_service_messages, usage_ccc_service_attachments).",
      "short",
      [target('usage_ccc_service_messages{%s}' % SVC, "{{service}} messages"),
       target('usage_ccc_service_attachments{%s}' % SVC,
              "{{service}} attachments")],
      options=TS_OPTS)
panel("timeseries", "Attachment storage",
      "Attachment storage used by each CCC service "
      "(usage_ccc_service_attachment_storage_bytes).", "bytes",
      [target('usage_ccc_service_attachment_storage_bytes{%s}' % SVC,
              "{{service}}")],
      options=TS_OPTS)
panel("bargauge", "Status changes in the range",
      "Status changes of each CCC service in the dashboard's time range, "
      "by new status (increase of usage_ccc_status_changes_total).", "short",
      [target('sum by (service, status) (increase(usage_ccc_status_changes_total'
              '{%s}[$__range]))' % SVC, "{{service}} {{status}}", instant=True)],
      w=24, h=6, options=BAR_OPTS)
newline()

# --- billing ------------------------------------------------------------------
row("Billing")
BL = SRC
panel("bargauge", "Data by customer in the range",
      "Billed data volume per customer in the dashboard's time range "
      "(increase of usage_billing_data_bytes_total; customer_id is the "
      "GroupBy label of customerId).", "bytes",
      [target('sort_desc(sum by (customer_id) (increase('
              'usage_billing_data_bytes_total{%s}[$__range])))' % BL,
              "{{customer_id}}", instant=True)],
      options=BAR_OPTS)
panel("timeseries", "Data rate by customer",
      "Billed data per second by customer "
      "(rate of usage_billing_data_bytes_total). Records are counted when "
      "they are loaded upstream, so late records show up late.", "Bps",
      [target('sum by (customer_id) (rate(usage_billing_data_bytes_total{%s}'
              '[$__rate_interval]))' % BL, "{{customer_id}}")],
      options=TS_OPTS, custom=STACK)
panel("table", "Customers by call class in the range",
      "Per customer and call class over the dashboard's time range: "
      "records, duration, data, sell and buy price (increase of the "
      "usage_billing_*_total counters). Prices are in the billing "
      "platform's currency.", "short",
      [target('sum by (customer_id, call_class) (increase('
              'usage_billing_records_total{%s}[$__range]))' % BL, "",
              instant=True, fmt="table"),
       target('sum by (customer_id, call_class) (increase('
              'usage_billing_duration_seconds_total{%s}[$__range]))' % BL, "",
              instant=True, fmt="table"),
       target('sum by (customer_id, call_class) (increase('
              'usage_billing_data_bytes_total{%s}[$__range]))' % BL, "",
              instant=True, fmt="table"),
       target('sum by (customer_id, call_class) (increase('
              'usage_billing_sell_price_total{%s}[$__range]))' % BL, "",
              instant=True, fmt="table"),
       target('sum by (customer_id, call_class) (increase('
              'usage_billing_buy_price_total{%s}[$__range]))' % BL, "",
              instant=True, fmt="table")],
      w=24, h=10,
      options={"showHeader": True,
               "sortBy": [{"displayName": "Sell price", "desc": True}]})
panels[-1]["transformations"] = [
    {"id": "merge", "options": {}},
    {"id": "organize", "options": {
        "excludeByName": {"Time": True},
        "renameByName": {"customer_id": "Customer",
                         "call_class": "Call class",
                         "Value #A": "Records", "Value #B": "Duration",
                         "Value #C": "Data", "Value #D": "Sell price",
                         "Value #E": "Buy price"}}}]
panels[-1]["fieldConfig"]["overrides"] = [
    {"matcher": {"id": "byName", "options": "Duration"},
     "properties": [{"id": "unit", "value": "s"}]},
    {"matcher": {"id": "byName", "options": "Data"},
     "properties": [{"id": "unit", "value": "bytes"}]}]
panel("timeseries", "Duration by call class",
      "Billed duration per second by call class "
      "(rate of usage_billing_duration_seconds_total).", "s",
      [target('sum by (call_class) (rate(usage_billing_duration_seconds_total'
              '{%s}[$__rate_interval]))' % BL, "{{call_class}}")],
      w=8, options=TS_OPTS, custom=STACK)
panel("timeseries", "Records by call class",
      "Billed usage records per second by call class "
      "(rate of usage_billing_records_total).", "short",
      [target('sum by (call_class) (rate(usage_billing_records_total'
              '{%s}[$__rate_interval]))' % BL, "{{call_class}}")],
      w=8, options=TS_OPTS, custom=STACK)
panel("timeseries", "Sell and buy price by customer",
      "Sell and buy price per second by customer (rate of "
      "usage_billing_sell_price_total and usage_billing_buy_price_total), "
      "in the billing platform's currency.", "short",
      [target('sum by (customer_id) (rate(usage_billing_sell_price_total'
              '{%s}[$__rate_interval]))' % BL, "{{customer_id}} sell"),
       target('sum by (customer_id) (rate(usage_billing_buy_price_total'
              '{%s}[$__rate_interval]))' % BL, "{{customer_id}} buy")],
      w=8, options=TS_OPTS)
newline()

# --- Jasper -------------------------------------------------------------------
row("Cisco Jasper")
panel("bargauge", "Data this cycle by zone",
      "Cycle-to-date data volume of each zone of the selected rate plans "
      "(usage_jasper_zone_data_bytes_total, which restarts at zero at a new "
      "billing cycle).", "bytes",
      [target('sort_desc(sum by (rate_plan, zone) ('
              'usage_jasper_zone_data_bytes_total{%s}))' % ZONE,
              "{{rate_plan}} {{zone}}", instant=True)],
      w=8, options=BAR_OPTS)
panel("bargauge", "SMS this cycle by zone",
      "Cycle-to-date SMS of each zone, mobile-originated and terminated "
      "(usage_jasper_zone_sms_total).", "short",
      [target('sum by (rate_plan, zone, direction) ('
              'usage_jasper_zone_sms_total{%s})' % ZONE,
              "{{rate_plan}} {{zone}} {{direction}}", instant=True)],
      w=8, options=BAR_OPTS)
panel("bargauge", "Voice this cycle by zone",
      "Cycle-to-date voice time of each zone by direction "
      "(usage_jasper_zone_voice_seconds_total).", "s",
      [target('sum by (rate_plan, zone, direction) ('
              'usage_jasper_zone_voice_seconds_total{%s})' % ZONE,
              "{{rate_plan}} {{zone}} {{direction}}", instant=True)],
      w=8, options=BAR_OPTS)
panel("timeseries", "Zone data over time",
      "Cycle-to-date data of each zone over time "
      "(usage_jasper_zone_data_bytes_total): the sawtooth restarts at each "
      "new billing cycle.", "bytes",
      [target('sum by (rate_plan, zone) (usage_jasper_zone_data_bytes_total'
              '{%s})' % ZONE, "{{rate_plan}} {{zone}}")],
      options=TS_OPTS)
panel("timeseries", "Zone data rate",
      "Data per second of each zone (rate of "
      "usage_jasper_zone_data_bytes_total; the cycle reset is handled by "
      "rate).", "Bps",
      [target('sum by (rate_plan, zone) (rate(usage_jasper_zone_data_bytes_total'
              '{%s}[$__rate_interval]))' % ZONE, "{{rate_plan}} {{zone}}")],
      options=TS_OPTS, custom=STACK)
panel("timeseries", "Devices with usage by zone",
      "Devices with usage in each zone this cycle (usage_jasper_zone_devices).",
      "short",
      [target('usage_jasper_zone_devices{%s}' % ZONE, "{{rate_plan}} {{zone}}")],
      w=8, options=TS_OPTS)
panel("bargauge", "Top $topn devices by data this cycle",
      "The devices (ICCID) with the most cycle-to-date data, over all zones "
      "(usage_jasper_device_data_bytes_total; needs PerDevice true).",
      "bytes",
      [target('topk($topn, sum by (rate_plan, iccid) ('
              'usage_jasper_device_data_bytes_total{%s}))' % ZONE,
              "{{iccid}} ({{rate_plan}})", instant=True)],
      w=8, h=10, options=BAR_OPTS)
panel("bargauge", "Top $topn devices by SMS this cycle",
      "The devices (ICCID) with the most cycle-to-date SMS, both directions "
      "and all zones (usage_jasper_device_sms_total; needs PerDevice true).",
      "short",
      [target('topk($topn, sum by (rate_plan, iccid) ('
              'usage_jasper_device_sms_total{%s}))' % ZONE,
              "{{iccid}} ({{rate_plan}})", instant=True)],
      w=8, h=10, options=BAR_OPTS)
newline()

VARS = [
    {"type": "datasource", "name": "datasource", "label": "Data source",
     "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
     "regex": "", "options": [], "includeAll": False, "multi": False},
]


def query_var(name, label, q):
    return {"type": "query", "name": name, "label": label, "datasource": DS,
            "definition": q, "query": q,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {}, "options": [], "hide": 0, "regex": "", "sort": 1}


VARS += [
    query_var("source", "Source", "label_values(usage_source_up, source)"),
    query_var("service", "CCC service",
              'label_values(usage_ccc_service_info{source=~"$source"}, service)'),
    query_var("rate_plan", "Rate plan",
              'label_values(usage_jasper_rate_plan_info{source=~"$source"}, '
              'rate_plan)'),
    query_var("zone", "Zone",
              'label_values(usage_jasper_zone_devices{source=~"$source", '
              'rate_plan=~"$rate_plan"}, zone)'),
    {"type": "custom", "name": "topn", "label": "Top N",
     "query": "5,10,20,50", "current": {"text": "10", "value": "10"},
     "options": [{"text": v, "value": v, "selected": v == "10"}
                 for v in ("5", "10", "20", "50")],
     "hide": 0, "includeAll": False, "multi": False},
]

dash = {
    "title": "Usage (collectd usage plugin)",
    "uid": "collectd-usage",
    "description": "Vendor usage scraped by the collectd usage plugin: CCC "
                   "secure messaging, billing platform, Cisco Jasper, and "
                   "the plugin's own health.",
    "tags": ["collectd", "usage", "ccc", "billing", "jasper"],
    "editable": True,
    "graphTooltip": 1,
    "schemaVersion": 38,
    "version": 1,
    "time": {"from": "now-7d", "to": "now"},
    "refresh": "5m",
    "timezone": "",
    "annotations": {"list": []},
    "links": [],
    "templating": {"list": VARS},
    "panels": panels,
}
json.dump(dash, sys.stdout, indent=2)
sys.stdout.write("\n")
