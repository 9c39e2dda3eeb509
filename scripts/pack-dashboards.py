#!/usr/bin/env python3
"""Generates the pack's Grafana dashboards, dashboards/*.json, from the panel
lists below (the way monitoring mixins generate theirs from jsonnet).

    scripts/pack-dashboards.py          # rewrite dashboards/*.json
    scripts/pack-dashboards.py --check  # exit 1 if any file differs from what it would write
    scripts/pack-dashboards.py --list   # print "file<TAB>panel<TAB>expr" for every query

Every dashboard takes its data source from the template variable
`datasource` (type prometheus), so the same JSON works against a Prometheus
scraping usherd or against usherd's own query API. Queries use Grafana's
$__rate_interval in rate() over raw counters; recorded series come from
rules/*.yml. Edit this file, never the JSON. Standard library only."""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x
DS = {"type": "prometheus", "uid": "${datasource}"}


def ts(title, exprs, unit="short", desc="", w=12, h=8, stack=False, max_=None):
    """A time series panel; exprs is a list of (expr, legend)."""
    defaults = {"unit": unit, "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                         "showPoints": "never", "spanNulls": False,
                                         "stacking": {"mode": "normal" if stack else "none",
                                                      "group": "A"}}}
    if max_ is not None:
        defaults["max"] = max_
        defaults["min"] = 0
    return {"type": "timeseries", "title": title, "description": desc, "exprs": exprs, "w": w,
            "h": h, "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title, exprs, unit="short", desc="", w=6, h=4, thresholds=None, decimals=None):
    """A stat panel showing the last value. thresholds: [(value|None, colour), ...]."""
    steps = [{"color": c, "value": v} for v, c in (thresholds or [(None, "green")])]
    defaults = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps},
                "color": {"mode": "thresholds"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {"type": "stat", "title": title, "description": desc, "exprs": exprs, "w": w, "h": h,
            "instant": True, "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                        "orientation": "auto", "textMode": "auto"}}


def table(title, exprs, desc="", w=24, h=8):
    """A table of the instant result of one query."""
    return {"type": "table", "title": title, "description": desc, "exprs": exprs, "w": w, "h": h,
            "instant": True, "table": True,
            "fieldConfig": {"defaults": {"custom": {"align": "auto"}}, "overrides": []},
            "options": {"showHeader": True, "footer": {"show": False}},
            "transformations": [{"id": "labelsToFields", "options": {"mode": "columns"}}]}


def row(title):
    return {"type": "row", "title": title}


RED_GREEN = [(None, "red"), (1, "green")]
BUDGET = [(None, "red"), (0.25, "orange"), (0.5, "green")]

DASHBOARDS = {
    "booking-overview": {
        "title": "Booking overview",
        "uid": "usher-booking-overview",
        "tags": ["booking", "slo"],
        "panels": [
            row("Service level objectives (30-day objectives, see scripts/pack-slo.py)"),
            stat("Availability, last hour", [("1 - operation:booking_request_errors:ratio_rate1h", "{{operation}}")],
                 unit="percentunit", w=12, decimals=3,
                 desc="Share of requests of each operation that succeeded over the last hour.",
                 thresholds=[(None, "red"), (0.99, "orange"), (0.999, "green")]),
            stat("Error budget left (3-day window)",
                 [("1 - (operation:booking_request_errors:ratio_rate3d / on (operation) "
                   "(1 - operation:booking_slo_availability:objective))", "{{operation}}")],
                 unit="percentunit", w=12, thresholds=BUDGET,
                 desc="How much of the availability error budget is left if the last 3 days "
                      "were the whole period; below 0 the SLO is missed."),
            ts("Availability SLI (5m)", [("1 - operation:booking_request_errors:ratio_rate5m", "{{operation}}")],
               unit="percentunit", max_=1),
            ts("Availability burn rate (1h)",
               [("operation:booking_request_errors:ratio_rate1h / on (operation) "
                 "(1 - operation:booking_slo_availability:objective)", "{{operation}}")],
               desc="1 spends the budget in exactly 30 days; the page thresholds are 14.4 and 6."),
            ts("Requests within the latency threshold (5m)",
               [("1 - operation:booking_request_slow:ratio_rate5m", "{{operation}}")],
               unit="percentunit", max_=1,
               desc="Thresholds: 0.25 s search and seat map, 0.5 s hold, 1 s checkout."),
            stat("Latency error budget left (3-day window)",
                 [("1 - (operation:booking_request_slow:ratio_rate3d / on (operation) "
                   "(1 - operation:booking_slo_latency:objective))", "{{operation}}")],
                 unit="percentunit", w=12, h=8, thresholds=BUDGET),
            row("Bookings"),
            ts("Bookings per minute",
               [(":booking_bookings_created:rate5m * 60", "bookings (database)"),
                ("sum(rate(booking_orders_total[$__rate_interval])) * 60", "orders (API)")]),
            ts("Payment failures by provider", [("provider:booking_payments_failed:ratio_rate5m", "{{provider}}")],
               unit="percentunit", max_=1),
            ts("Seats by state (upcoming events)", [("sum by (state) (booking_event_seats)", "{{state}}")],
               stack=True),
            ts("Expired holds not released", [("sum by (event_id) (booking_holds_expired_unreleased)", "event {{event_id}}")]),
            stat("Oversell invariants (must be 0)",
                 [("booking_invariant_seats_double_booked", "double booked"),
                  ("booking_invariant_seats_over_capacity", "over capacity")],
                 w=12, thresholds=[(None, "green"), (1, "red")]),
            stat("Booking journey", [("min by (job) (usher_journey_step_success)", "{{job}}")],
                 w=12, thresholds=RED_GREEN,
                 desc="1 when every step of the synthetic booking journey passed on its last run."),
            row("Incidents"),
            stat("Open incidents", [("sum by (severity) (usher_incidents_open)", "{{severity}}")], w=12,
                 thresholds=[(None, "green"), (1, "red")]),
            stat("Firing alerts", [('sum by (severity) (ALERTS{alertstate="firing"})', "{{severity}}")], w=12,
                 thresholds=[(None, "green"), (2, "orange")]),
        ],
    },
    "api-probes": {
        "title": "Booking API probes",
        "uid": "usher-api-probes",
        "tags": ["booking", "probes"],
        "panels": [
            row("Probes"),
            ts("Probe success", [("probe_success", "{{job}}")], max_=1,
               desc="1 when the probe's last run passed every check."),
            ts("Probe duration", [("probe_duration_seconds", "{{job}}")], unit="s"),
            ts("HTTP phases", [("sum by (job, phase) (probe_http_duration_seconds)", "{{job}} {{phase}}")],
               unit="s", stack=True),
            ts("HTTP status code", [("probe_http_status_code", "{{job}}")]),
            ts("Probe runs by outcome",
               [("sum by (job, outcome) (rate(usher_probe_runs_total[$__rate_interval]))", "{{job}} {{outcome}}")],
               unit="ops"),
            ts("Probe duration p90",
               [("histogram_quantile(0.9, sum by (job, le) (rate(usher_probe_duration_seconds_bucket[$__rate_interval])))",
                 "{{job}}")], unit="s"),
            ts("Failure reasons", [("sum by (job, reason) (probe_failure_info)", "{{job}} {{reason}}")],
               desc="1 for the reason of a failing probe's last run."),
            stat("TLS certificate days left", [("(probe_ssl_earliest_cert_expiry - time()) / 86400", "{{job}}")],
                 unit="d", w=12, h=8, thresholds=[(None, "red"), (3, "orange"), (14, "green")]),
            row("Booking API (its own metrics)"),
            ts("Requests by route", [("route_method:booking_http_requests:rate5m", "{{method}} {{route}}")], unit="reqps"),
            ts("5xx ratio", [("job:booking_http_requests_5xx:ratio_rate5m", "{{job}}")], unit="percentunit"),
            ts("Latency p99 by route",
               [('route_quantile:booking_http_request_duration_seconds:histogram_quantile{quantile="0.99"}', "{{route}}")],
               unit="s"),
            ts("Latency p50 by route",
               [('route_quantile:booking_http_request_duration_seconds:histogram_quantile{quantile="0.5"}', "{{route}}")],
               unit="s"),
            ts("Booking journey steps", [("usher_journey_step_success", "{{job}} {{step}}")], max_=1),
            ts("Booking journey step duration", [("usher_journey_step_duration_seconds", "{{job}} {{step}}")],
               unit="s", stack=True),
            ts("Journey clean-up failures",
               [("increase(usher_journey_cleanup_failures_total[$__rate_interval])", "{{job}}")], w=24),
        ],
    },
    "postgresql": {
        "title": "PostgreSQL",
        "uid": "usher-postgresql",
        "tags": ["booking", "postgresql"],
        "panels": [
            row("Health"),
            stat("Up", [("pg_up", "{{job}}")], thresholds=RED_GREEN),
            stat("Connections used", [("instance:pg_connections:ratio", "{{instance}}")], unit="percentunit",
                 thresholds=[(None, "green"), (0.8, "orange"), (0.95, "red")]),
            stat("Replication lag", [("pg_replication_lag_seconds", "{{instance}}")], unit="s",
                 thresholds=[(None, "green"), (30, "orange")]),
            stat("Oldest transaction ID age", [("max by (instance) (pg_database_wraparound_age_datfrozenxid_seconds)",
                                                "{{instance}}")],
                 thresholds=[(None, "green"), (1e9, "orange"), (1.5e9, "red")],
                 desc="age(datfrozenxid); PostgreSQL stops writes near 2.1 billion."),
            row("Activity"),
            ts("Connections by state", [("sum by (state) (pg_stat_activity_count)", "{{state}}")], stack=True),
            ts("Transactions per second", [("datname:pg_stat_database_xact:rate5m", "{{datname}}")], unit="ops"),
            ts("Cache hit ratio", [("datname:pg_stat_database_blks_hit:ratio_rate5m", "{{datname}}")],
               unit="percentunit", max_=1),
            ts("Longest transaction by state",
               [("max by (datname, state) (pg_stat_activity_max_tx_duration)", "{{datname}} {{state}}")], unit="s"),
            ts("Locks by mode", [("sum by (mode) (pg_locks_count)", "{{mode}}")], stack=True),
            ts("Deadlocks (10m)", [("datname:pg_stat_database_deadlocks:increase10m", "{{datname}}")]),
            row("Storage and replication"),
            ts("Database size", [("pg_database_size_bytes", "{{datname}}")], unit="bytes"),
            ts("Dead tuples (top 10 tables)", [("topk(10, pg_stat_user_tables_n_dead_tup)", "{{datname}}.{{relname}}")]),
            ts("Replica replay lag", [("pg_stat_replication_replay_lag_seconds", "{{application_name}}")], unit="s",
               desc="Per replica, as the primary sees it (pg_stat_replication)."),
            ts("Custom query duration", [("usher_sql_query_duration_seconds", "{{query}}")], unit="s"),
        ],
    },
    "redis-memcached": {
        "title": "Redis and memcached",
        "uid": "usher-redis-memcached",
        "tags": ["booking", "redis", "memcached"],
        "panels": [
            row("Redis (seat holds)"),
            stat("Redis up", [("redis_up", "{{job}}")], thresholds=RED_GREEN),
            stat("Memory of maxmemory", [("instance:redis_memory_used:ratio", "{{instance}}")], unit="percentunit",
                 thresholds=[(None, "green"), (0.8, "orange"), (0.9, "red")]),
            stat("Live seat holds", [('usher_redis_key_pattern_keys{pattern="hold:*"}', "{{job}}")]),
            stat("Connected clients", [("redis_connected_clients", "{{instance}}")]),
            ts("Memory", [("redis_memory_used_bytes", "used {{instance}}"),
                          ("redis_memory_max_bytes", "maxmemory {{instance}}")], unit="bytes"),
            ts("Hit ratio", [("instance:redis_keyspace_hits:ratio_rate5m", "{{instance}}")], unit="percentunit", max_=1),
            ts("Commands per second", [("instance:redis_commands:rate5m", "{{instance}}")], unit="ops"),
            ts("Evicted and expired keys",
               [("rate(redis_evicted_keys_total[$__rate_interval])", "evicted {{instance}}"),
                ("rate(redis_expired_keys_total[$__rate_interval])", "expired {{instance}}")], unit="ops"),
            ts("Rejected connections", [("increase(redis_rejected_connections_total[$__rate_interval])", "{{instance}}")]),
            ts("PING latency p99",
               [("histogram_quantile(0.99, sum by (job, le) (rate(usher_redis_ping_duration_seconds_bucket[$__rate_interval])))",
                 "{{job}}")], unit="s"),
            row("memcached (sessions)"),
            stat("memcached up", [("memcached_up", "{{job}}")], thresholds=RED_GREEN),
            stat("Connections of limit", [("instance:memcached_connections:ratio", "{{instance}}")], unit="percentunit"),
            ts("Get hit ratio", [("instance:memcached_get_hits:ratio_rate5m", "{{instance}}")], unit="percentunit", max_=1),
            ts("Memory", [("memcached_current_bytes", "used {{instance}}"),
                          ("memcached_limit_bytes", "limit {{instance}}")], unit="bytes"),
            ts("Evictions", [("rate(memcached_items_evicted_total[$__rate_interval])", "{{instance}}")], unit="ops"),
        ],
    },
    "host": {
        "title": "Hosts",
        "uid": "usher-host",
        "tags": ["booking", "host"],
        "panels": [
            row("Resources"),
            ts("CPU utilisation", [("instance:node_cpu_utilisation:rate5m", "{{instance}}")], unit="percentunit", max_=1),
            ts("Load per CPU", [("instance:node_load1_per_cpu:ratio", "{{instance}}")]),
            ts("Memory utilisation", [("instance:node_memory_utilisation:ratio", "{{instance}}")], unit="percentunit",
               max_=1),
            ts("Filesystem space available", [("instance_mountpoint:node_filesystem_avail:ratio",
                                               "{{instance}} {{mountpoint}}")], unit="percentunit", max_=1),
            ts("Filesystem space in 24h (linear prediction)",
               [('predict_linear(node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs|squashfs"}[1h], 24 * 3600)',
                 "{{instance}} {{mountpoint}}")], unit="bytes"),
            ts("Network", [("sum by (instance) (rate(node_network_receive_bytes_total[$__rate_interval]))", "in {{instance}}"),
                           ("sum by (instance) (rate(node_network_transmit_bytes_total[$__rate_interval]))", "out {{instance}}")],
               unit="Bps"),
            ts("Disk throughput",
               [("sum by (instance) (rate(node_disk_read_bytes_total[$__rate_interval]))", "read {{instance}}"),
                ("sum by (instance) (rate(node_disk_written_bytes_total[$__rate_interval]))", "written {{instance}}")],
               unit="Bps", w=24),
        ],
    },
    "backups": {
        "title": "Backups and DR",
        "uid": "usher-backups",
        "tags": ["booking", "backup"],
        "panels": [
            row("Backups"),
            stat("Age of the last good backup", [("time() - usher_backup_last_success_timestamp_seconds", "{{target}}")],
                 unit="s", w=8, thresholds=[(None, "green"), (26 * 3600, "orange"), (50 * 3600, "red")]),
            stat("Last backup status", [("usher_backup_last_status", "{{target}}")], w=8, thresholds=RED_GREEN),
            stat("Last backup size", [("usher_backup_last_size_bytes", "{{target}}")], unit="bytes", w=8),
            ts("Backup duration", [("usher_backup_last_duration_seconds", "{{target}}")], unit="s"),
            ts("Backup size", [("usher_backup_last_size_bytes", "{{target}}")], unit="bytes"),
            row("Restore drills"),
            stat("Age of the last good drill", [("time() - usher_dr_drill_last_success_timestamp_seconds", "{{target}}")],
                 unit="s", w=12, thresholds=[(None, "green"), (8 * 86400, "orange")]),
            stat("Last drill status", [("usher_dr_drill_last_status", "{{target}}")], w=6, thresholds=RED_GREEN),
            stat("Last verify status", [("usher_backup_verify_last_status", "{{target}}")], w=6,
                 thresholds=RED_GREEN),
            stat("Recovery time of the last drill (RTO)", [("usher_dr_drill_rto_seconds", "{{target}}")], unit="s",
                 w=12),
            stat("Recovery point of the last drill (RPO)", [("usher_dr_drill_rpo_seconds", "{{target}}")], unit="s",
                 w=12),
        ],
    },
    "alerts-incidents": {
        "title": "Alerts and incidents",
        "uid": "usher-alerts-incidents",
        "tags": ["booking", "alerting"],
        "panels": [
            row("Alerts"),
            ts("Firing alerts by severity", [('sum by (severity) (ALERTS{alertstate="firing"})', "{{severity}}")],
               stack=True),
            ts("Pending alerts", [('sum by (alertname) (ALERTS{alertstate="pending"})', "{{alertname}}")]),
            table("Firing now", [('ALERTS{alertstate="firing"}', "")]),
            row("Incidents and notifications"),
            stat("Open incidents", [("sum by (severity) (usher_incidents_open)", "{{severity}}")], w=8,
                 thresholds=[(None, "green"), (1, "red")]),
            stat("Median time to acknowledge (7d)",
                 [("histogram_quantile(0.5, sum by (le) (rate(usher_incident_time_to_ack_seconds_bucket[7d])))", "MTTA")],
                 unit="s", w=8),
            stat("Median time to resolve (7d)",
                 [("histogram_quantile(0.5, sum by (le) (rate(usher_incident_time_to_resolve_seconds_bucket[7d])))",
                   "MTTR")], unit="s", w=8),
            ts("Notifications by outcome",
               [("sum by (integration, outcome) (rate(usher_notifications_total[$__rate_interval]))",
                 "{{integration}} {{outcome}}")], unit="ops"),
            ts("Notification latency p99",
               [("histogram_quantile(0.99, sum by (integration, le) "
                 "(rate(usher_notification_latency_seconds_bucket[$__rate_interval])))", "{{integration}}")], unit="s"),
        ],
    },
    "usherd": {
        "title": "usherd",
        "uid": "usher-usherd",
        "tags": ["usher"],
        "panels": [
            row("Process"),
            stat("Version", [("usher_build_info", "{{version}}")], w=8),
            stat("Config reload", [("usher_config_last_reload_successful", "{{instance}}")], w=8,
                 thresholds=RED_GREEN),
            stat("Probes configured", [("sum(usher_probes)", "probes")], w=8),
            ts("Resident memory", [("process_resident_memory_bytes", "{{instance}}")], unit="bytes"),
            ts("CPU", [("rate(process_cpu_seconds_total[$__rate_interval])", "{{instance}}")], unit="percentunit"),
            ts("Open file descriptors", [("process_open_fds", "{{instance}}")]),
            ts("/metrics and API latency p99",
               [("histogram_quantile(0.99, sum by (le) (rate(usher_http_request_duration_seconds_bucket[$__rate_interval])))",
                 "p99")], unit="s"),
            row("Work"),
            ts("Probe runs per second", [("sum by (outcome) (rate(usher_probe_runs_total[$__rate_interval]))",
                                          "{{outcome}}")], unit="ops", stack=True),
            ts("App scrape duration", [("scrape_duration_seconds", "{{job}}")], unit="s"),
            ts("Rule evaluation failures",
               [("sum by (rule_group) (increase(usher_rule_evaluation_failures_total[$__rate_interval]))",
                 "{{rule_group}}")]),
            ts("Custom SQL query errors",
               [("sum by (query, reason) (increase(usher_sql_query_errors_total[$__rate_interval]))",
                 "{{query}} {{reason}}")]),
            row("Logs"),
            ts("Log events by sink and outcome",
               [("sum by (sink, outcome) (rate(usher_log_events_total[$__rate_interval]))", "{{sink}} {{outcome}}")],
               unit="ops"),
            ts("Log events dropped", [("sum by (sink, reason) (increase(usher_log_dropped_total[$__rate_interval]))",
                                       "{{sink}} {{reason}}")]),
            ts("Log spool", [("usher_log_spool_bytes", "{{sink}}")], unit="bytes", w=24),
        ],
    },
}


def layout(panels):
    """Grafana panels with ids and grid positions: rows full width, the
    others flowing left to right, 24 columns wide."""
    out, x, y, row_h, pid = [], 0, 0, 0, 1
    for p in panels:
        if p["type"] == "row":
            if x:
                y += row_h
            out.append({"collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "id": pid,
                        "panels": [], "title": p["title"], "type": "row"})
            x, y, row_h, pid = 0, y + 1, 0, pid + 1
            continue
        w, h = p["w"], p["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        targets = []
        for i, (expr, legend) in enumerate(p["exprs"]):
            t = {"datasource": DS, "editorMode": "code", "expr": expr, "legendFormat": legend or "__auto",
                 "range": not p.get("instant", False), "instant": p.get("instant", False),
                 "refId": chr(ord("A") + i)}
            if p.get("table"):
                t["format"] = "table"
            targets.append(t)
        panel = {"datasource": DS, "description": p["description"], "fieldConfig": p["fieldConfig"],
                 "gridPos": {"h": h, "w": w, "x": x, "y": y}, "id": pid, "options": p["options"],
                 "targets": targets, "title": p["title"], "type": p["type"]}
        if "transformations" in p:
            panel["transformations"] = p["transformations"]
        out.append(panel)
        pid += 1
        x += w
        row_h = max(row_h, h)
    return out


def dashboard(d):
    return {
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "description": f"{d['title']} - generated by scripts/pack-dashboards.py (usher's booking-platform pack)",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [{"asDropdown": True, "includeVars": True, "keepTime": True, "tags": ["booking"],
                   "targetBlank": False, "title": "Booking dashboards", "type": "dashboards"}],
        "panels": layout(d["panels"]),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["usher", *d["tags"]],
        "templating": {"list": [{"current": {}, "hide": 0, "includeAll": False, "label": "Data source",
                                 "multi": False, "name": "datasource", "options": [], "query": "prometheus",
                                 "refresh": 1, "regex": "", "skipUrlSync": False, "type": "datasource"}]},
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": d["title"],
        "uid": d["uid"],
        "version": 1,
        "weekStart": "",
    }


def render(d):
    return json.dumps(dashboard(d), indent=2, ensure_ascii=False) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="only compare, write nothing")
    g.add_argument("--list", action="store_true", help="print every panel query")
    args = p.parse_args()
    outdir = ROOT / "dashboards"
    if args.list:
        for name, d in DASHBOARDS.items():
            for panel in d["panels"]:
                for expr, _ in panel.get("exprs", []):
                    print(f"{name}.json\t{panel['title']}\t{expr}")
        return 0
    stale = []
    for name, d in DASHBOARDS.items():
        path, text = outdir / f"{name}.json", render(d)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            outdir.mkdir(exist_ok=True)
            path.write_text(text)
    if args.check:
        known = {f"{n}.json" for n in DASHBOARDS}
        stale += [f"dashboards/{f.name} (not generated)" for f in outdir.glob("*.json") if f.name not in known]
    if stale:
        print(f"out of date (run scripts/pack-dashboards.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
