#!/usr/bin/env python3
"""Render dashboards/cmpp-gateway.json to one PNG from a live Prometheus, without Grafana.

Every panel of the dashboard (panels inside rows included) is queried through Prometheus'
HTTP API (`/api/v1/query_range`) and drawn with matplotlib where the dashboard's gridPos puts
it: time series panels as line charts, stat panels as a big last value. Template variables are
substituted: `$link`, `$channel` and `$instance` become `.*`, `$__rate_interval` becomes --rate-interval,
`$__range` the rendered range. A panel whose queries return nothing says "no data".

Run (from the repository root, with Prometheus scraping a running gateway):

    pip install matplotlib
    python3 scripts/render_dashboard.py --prometheus http://127.0.0.1:9090 \
        --start 2026-11-26T00:41:20Z --end 2026-11-26T00:49:10Z --out docs/dashboard.png

--start/--end take RFC 3339 times or Unix seconds; without them the last --minutes (8) are drawn.
"""

import argparse
import json
import math
import re
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

GRAFANA_COLORS = {"green": "#56a64b", "yellow": "#e0b400", "red": "#e02f44", "orange": "#ff780a",
                  "purple": "#a352cc", "blue": "#3274d9", "text": "#d8d9da"}
# Grafana's classic palette, by colour family, so that series without a fixed colour do not take
# the family an override gave another series of the panel (two greens next to each other).
PALETTE = [("green", "#7eb26d"), ("yellow", "#eab839"), ("blue", "#6ed0e0"), ("orange", "#ef843c"),
           ("red", "#e24d42"), ("blue", "#1f78c1"), ("purple", "#ba43a9"), ("purple", "#705da0"),
           ("green", "#508642"), ("yellow", "#cca300"), ("blue", "#447ebc"), ("orange", "#c15c17")]
BG, PANEL_BG, GRID, TEXT = "#111217", "#181b1f", "#2c3235", "#ccccdc"
UNIT_PX, PX_PER_INCH = 36, 100  # height of one gridPos unit; figure dpi


def parse_time(s):
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def walk_panels(panels):
    """Every panel in dashboard order, with the panels of (collapsed) rows after their row."""
    for p in panels:
        yield p
        yield from walk_panels(p.get("panels", []))


def substitute(expr, rate_interval, range_s):
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__range", f"{int(range_s)}s")
    return re.sub(r"\$\{?(link|channel|instance)\}?", ".*", expr)


def query_range(base, expr, start, end, step):
    qs = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{base}/api/v1/query_range?{qs}", timeout=30) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def legend(fmt, metric):
    if not fmt:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in metric.items()) + "}"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: metric.get(m.group(1), ""), fmt).strip()


def si(v, suffix=""):
    for div, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{p}{suffix}"
    return f"{v:.3g}{suffix}"


def fmt_value(v, unit, decimals=None):
    if v is None or math.isnan(v):
        return "-"
    if unit == "percentunit":
        return f"{v * 100:.{1 if decimals is None else decimals}f}%"
    if unit == "s":
        if v == 0 or abs(v) >= 1:
            if abs(v) >= 3600:
                return f"{v / 3600:.1f} h"
            if abs(v) >= 60:
                return f"{v / 60:.1f} min"
            return f"{v:.{0 if decimals is None else decimals}f} s"
        return f"{v * 1e3:.3g} ms" if abs(v) >= 1e-3 else f"{v * 1e6:.3g} µs"
    suffix = {"ops": " ops/s", "reqps": " req/s", "cpm": " /min"}.get(unit, "")
    if decimals == 0:
        return f"{round(v):,}{suffix}" if abs(v) < 1e4 else si(v, suffix)
    return si(v, suffix)


def overrides(panel, name):
    """(colour family, dashed) from the panel's byName / byRegexp field overrides."""
    color, dashed = None, False
    for o in panel.get("fieldConfig", {}).get("overrides", []):
        m = o.get("matcher", {})
        hit = (m.get("id") == "byName" and m.get("options") == name) or \
              (m.get("id") == "byRegexp" and re.search(m.get("options", "$^"), name))
        if not hit:
            continue
        for prop in o.get("properties", []):
            if prop["id"] == "color":
                color = prop["value"].get("fixedColor")
            if prop["id"] == "custom.lineStyle":
                dashed = prop["value"].get("fill") == "dash"
    return color, dashed


def threshold_color(defaults, v):
    color = "green"
    for step in defaults.get("thresholds", {}).get("steps", []):
        if step.get("value") is None or v >= step["value"]:
            color = step["color"]
    return GRAFANA_COLORS.get(color, color)


def series_of(panel, args):
    """[(legend, [timestamps], [values])] of every target of the panel."""
    out = []
    for t in panel.get("targets", []):
        if t.get("hide") or not t.get("expr"):
            continue
        expr = substitute(t["expr"], args.rate_interval, args.end - args.start)
        for r in query_range(args.prometheus, expr, args.start, args.end, args.step):
            ts = [datetime.fromtimestamp(float(x), timezone.utc) for x, _ in r["values"]]
            vs = [float(v) for _, v in r["values"]]
            out.append((legend(t.get("legendFormat", ""), r["metric"]), ts, vs))
    return out


def drop_flat_zero(series, keep=4):
    """In panels of many series (every Result, every route), leave out those always 0 or empty,
    unless that is all of them. Returns the series to draw and how many were left out."""
    if len(series) <= keep:
        return series, 0
    live = [s for s in series if any(v != 0 and not math.isnan(v) for v in s[2])]
    return (live, len(series) - len(live)) if live else (series, 0)


def legend_cols(panel, n):
    w = panel["gridPos"]["w"]
    return min(n, 3 if w <= 6 else 4 if w <= 8 else 5)


def draw_stat(ax, panel, series):
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit, decimals = defaults.get("unit"), defaults.get("decimals")
    name_mode = panel.get("options", {}).get("textMode") == "name"
    n = len(series)
    for i, (name, _, vs) in enumerate(series):
        last = next((v for v in reversed(vs) if not math.isnan(v)), float("nan"))
        y = 0.45 if n == 1 else 0.8 - i * 0.6 / max(n - 1, 1)
        if name_mode:
            ax.text(0.5, y, name, ha="center", va="center", fontsize=15, color=TEXT, transform=ax.transAxes)
            continue
        color = TEXT if panel.get("options", {}).get("colorMode") == "none" else threshold_color(defaults, last)
        ax.text(0.5, y, fmt_value(last, unit, decimals), ha="center", va="center", fontsize=30,
                fontweight="bold", color=color, transform=ax.transAxes)
        if n > 1:
            ax.text(0.5, y - 0.2, name, ha="center", fontsize=9, color=TEXT, transform=ax.transAxes)
    ax.set_axis_off()


def draw_timeseries(ax, panel, series, start, end, legend_at):
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit")
    series = sorted(series, key=lambda s: s[0])
    styles = [overrides(panel, name) for name, _, _ in series]
    taken = {family for family, _ in styles if family}
    free = iter([c for f, c in PALETTE if f not in taken] * 3 + [c for _, c in PALETTE] * 3)
    for (name, ts, vs), (family, dashed) in zip(series, styles):
        color = GRAFANA_COLORS.get(family, family) if family else next(free)
        ax.plot(ts, vs, label=name, lw=1.4, color=color, linestyle=(0, (5, 4)) if dashed else "-")
    values = [v for _, _, vs in series for v in vs if not math.isnan(v)]
    if defaults.get("min") is not None or (values and min(values) >= 0):
        ax.set_ylim(bottom=defaults.get("min") or 0)
    if defaults.get("max") is not None:
        ax.set_ylim(top=defaults["max"] * 1.05)
    elif not values or max(values) == 0:
        ax.set_ylim(top=1)  # as Grafana does for a flat zero line
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_value(v, unit)))
    ax.set_xlim(datetime.fromtimestamp(start, timezone.utc), datetime.fromtimestamp(end, timezone.utc))
    every = max(1, math.ceil((end - start) / 60 / 7))  # about 7 ticks, on whole minutes
    ax.xaxis.set_major_locator(mdates.MinuteLocator(byminute=range(0, 60, every), tz=timezone.utc))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    ax.grid(color=GRID, lw=0.6)
    ax.tick_params(colors=TEXT, labelsize=8)
    for s in ax.spines.values():
        s.set_color(GRID)
    ax.legend(loc="upper center", bbox_to_anchor=legend_at, bbox_transform=ax.figure.transFigure,
              ncol=legend_cols(panel, len(series)), fontsize=7.5, frameon=False,
              labelcolor=TEXT, handlelength=1.5, columnspacing=1.2, borderaxespad=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--dashboard", default="dashboards/cmpp-gateway.json")
    ap.add_argument("--start", help="RFC 3339 or Unix seconds (default: end - --minutes)")
    ap.add_argument("--end", help="RFC 3339 or Unix seconds (default: now)")
    ap.add_argument("--minutes", type=float, default=8)
    ap.add_argument("--step", type=float, default=0, help="seconds (default: range / 240, at least 2)")
    ap.add_argument("--rate-interval", default="30s", help="what $__rate_interval becomes")
    ap.add_argument("--width", type=int, default=2200, help="PNG width in pixels")
    ap.add_argument("--out", default="docs/dashboard.png")
    args = ap.parse_args()
    args.prometheus = args.prometheus.rstrip("/")
    args.end = parse_time(args.end) if args.end else time.time()
    args.start = parse_time(args.start) if args.start else args.end - args.minutes * 60
    args.step = args.step or max(2.0, round((args.end - args.start) / 240))

    dash = json.load(open(args.dashboard, encoding="utf-8"))
    panels = list(walk_panels(dash["panels"]))
    # Panels inside a (collapsed) row keep their own gridPos, which Grafana uses when it expands.
    rows_h = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    head = 2.2  # units for the dashboard title
    W, H = args.width, (rows_h + head) * UNIT_PX
    fig = plt.figure(figsize=(W / PX_PER_INCH, H / PX_PER_INCH), dpi=PX_PER_INCH, facecolor=BG)
    rng = f"{datetime.fromtimestamp(args.start, timezone.utc):%Y-%m-%d %H:%M:%S} – " \
          f"{datetime.fromtimestamp(args.end, timezone.utc):%H:%M:%S} UTC"
    fig.text(0.006, 1 - 0.9 * UNIT_PX / H, dash["title"], fontsize=18, color=TEXT, va="center",
             fontweight="bold")
    fig.text(0.994, 1 - 0.9 * UNIT_PX / H, f"{rng}  ·  link = All, instance = All  ·  "
             f"$__rate_interval = {args.rate_interval}", fontsize=11, color="#8e8e8e", va="center", ha="right")

    pad = 6 / W  # gap between panels, as a figure fraction
    with_data = []
    for p in panels:
        g = p["gridPos"]
        x0, y_top = g["x"] / 24, 1 - (g["y"] + head) * UNIT_PX / H
        w, h = g["w"] / 24, g["h"] * UNIT_PX / H
        if p["type"] == "row":
            fig.text(x0 + pad, y_top - h / 2, p["title"], fontsize=14, color=TEXT, va="center", fontweight="bold")
            continue
        # The panel's frame, its title, then the plot area inside it.
        frame = fig.add_axes([x0 + pad, y_top - h + pad, w - 2 * pad, h - 2 * pad])
        frame.set_facecolor(PANEL_BG)
        frame.set_xticks([])
        frame.set_yticks([])
        for s in frame.spines.values():
            s.set_color(GRID)
        frame.text(0.012 if g["w"] > 6 else 0.02, 1 - 14 / (g["h"] * UNIT_PX), p["title"], fontsize=10.5,
                   color=TEXT, fontweight="bold", va="center", transform=frame.transAxes)
        series = series_of(p, args)
        with_data.append((p["title"], bool(series)))
        if not series:
            frame.text(0.5, 0.45, "no data", ha="center", va="center", fontsize=13, color="#8e8e8e",
                       transform=frame.transAxes)
            continue
        if p["type"] == "stat":
            ax = fig.add_axes([x0 + pad, y_top - h + pad, w - 2 * pad, h - 2 * pad - 22 / H])
            ax.set_facecolor("none")
            draw_stat(ax, p, series)
        else:
            series, hidden = drop_flat_zero(series)
            if hidden:
                frame.text(0.99, 1 - 14 / (g["h"] * UNIT_PX), f"{hidden} series always 0 not shown",
                           fontsize=8, color="#8e8e8e", ha="right", va="center", transform=frame.transAxes)
            # Leave room: title on top, y tick labels left, x labels + legend below.
            legend_px = 8 + 15 * math.ceil(len(series) / legend_cols(p, len(series)))
            left, right, top, ticks = 72 / W, 14 / W, 38 / H, 24 / H
            bottom = y_top - h + legend_px / H + ticks
            ax = fig.add_axes([x0 + left, bottom, w - left - right, y_top - top - bottom])
            ax.set_facecolor(PANEL_BG)
            draw_timeseries(ax, p, series, args.start, args.end, (x0 + w / 2, bottom - ticks + 2 / H))
    fig.savefig(args.out, dpi=PX_PER_INCH, facecolor=BG)
    empty = [t for t, ok in with_data if not ok]
    print(f"{args.out}: {len(with_data)} panels, {len(with_data) - len(empty)} with data, "
          f"{len(empty)} without: {', '.join(empty) or '-'}")


if __name__ == "__main__":
    main()
