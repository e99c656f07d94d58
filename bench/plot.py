#!/usr/bin/env python3
"""Plots bench/sweep.sh's CSV as an SVG, with no plotting library: payload
MB/s against connections (log2 x axis, log10 y axis), one panel per
workload, one line per target, the plain-curl ceiling of each target dashed
in the same colour, and each WAN link rate dotted. A --connections auto run
is a square at the limit it ended on, labelled "auto".

usage: bench/plot.py sweep.csv sweep.svg
"""
import csv
import math
import sys
from xml.sax.saxutils import escape

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
PANEL_W, PANEL_H = 460, 340
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 40, 50


def load(path):
    rows = list(csv.DictReader(open(path)))
    # A curl row with a few failed requests still plots (its MB/s counts
    # only the 201s); a failed or skipped vhdup row does not.
    rows = [r for r in rows if r["payload_MBps"]
            and (r["status"] == "ok" or (r["workload"] == "curl" and r["status"].startswith("partial")))]
    fixed = [r for r in rows if r["connections"] != "auto"]
    auto = [r for r in rows if r["connections"] == "auto" and r.get("auto_limit_end")]
    return fixed, auto


def main():
    rows, auto = load(sys.argv[1])
    targets = []
    for r in rows:
        if r["target"] not in targets:
            targets.append(r["target"])
    colour = {t: COLOURS[i % len(COLOURS)] for i, t in enumerate(targets)}
    workloads = []
    for r in rows:
        if r["workload"] != "curl" and r["workload"] not in workloads:
            workloads.append(r["workload"])
    conns = sorted({int(r["connections"]) for r in rows})
    values = [float(r["payload_MBps"]) for r in rows if float(r["payload_MBps"]) > 0]
    if not conns or not values:
        sys.exit("plot: nothing to plot")
    links = {r["target"]: float(r["link_MBps"]) for r in rows if r["link_MBps"]}
    values += list(links.values())
    y_lo = 10 ** math.floor(math.log10(min(values)))
    y_hi = 10 ** math.ceil(math.log10(max(values)))
    x_lo, x_hi = math.log2(min(conns)), max(math.log2(max(conns)), math.log2(min(conns)) + 1)

    legend_h = 20 * (len(targets) + 2)
    width = len(workloads) * (PANEL_W + LEFT + RIGHT)
    height = TOP + PANEL_H + BOTTOM + legend_h
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>']

    for p, w in enumerate(workloads):
        ox = p * (PANEL_W + LEFT + RIGHT) + LEFT

        def sx(c):
            return ox + (math.log2(c) - x_lo) / (x_hi - x_lo) * PANEL_W

        def sy(v):
            return TOP + PANEL_H - (math.log10(v) - math.log10(y_lo)) / \
                (math.log10(y_hi) - math.log10(y_lo)) * PANEL_H

        out.append('<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>'
                   % (ox, TOP - 15, escape("workload: " + w)))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>'
                   % (ox, TOP, PANEL_W, PANEL_H))
        for c in conns:
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>'
                       % (sx(c), TOP, sx(c), TOP + PANEL_H))
            out.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>'
                       % (sx(c), TOP + PANEL_H + 16, c))
        out.append('<text x="%d" y="%d" text-anchor="middle">connections (log2)</text>'
                   % (ox + PANEL_W // 2, TOP + PANEL_H + 36))
        decade = y_lo
        while decade <= y_hi * 1.0001:
            for m in (1, 2, 5):
                v = decade * m
                if v > y_hi * 1.0001:
                    break
                out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>'
                           % (ox, sy(v), ox + PANEL_W, sy(v), "#bbb" if m == 1 else "#eee"))
                out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>'
                           % (ox - 4, sy(v) + 4, v))
            decade *= 10
        out.append('<text transform="translate(%d,%d) rotate(-90)" text-anchor="middle">'
                   'payload MB/s (log10)</text>' % (ox - 45, TOP + PANEL_H // 2))
        here = [t for t in targets if any(r["target"] == t and r["workload"] == w for r in rows)]
        for t, link in links.items():
            if t not in here:
                continue
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" '
                       'stroke-dasharray="1,3" stroke-width="1.5"/>'
                       % (ox, sy(link), ox + PANEL_W, sy(link), colour[t]))
        for t in here:
            for kind, dash in ((w, ""), ("curl", ' stroke-dasharray="6,4"')):
                pts = sorted((int(r["connections"]), float(r["payload_MBps"])) for r in rows
                             if r["target"] == t and r["workload"] == kind
                             and float(r["payload_MBps"]) > 0)
                if not pts:
                    continue
                path = " ".join("%.1f,%.1f" % (sx(c), sy(v)) for c, v in pts)
                out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>'
                           % (path, colour[t], dash))
                for c, v in pts:
                    out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s" stroke="%s"/>'
                               % (sx(c), sy(v), "white" if dash else colour[t], colour[t]))
            for r in auto:
                if r["target"] != t or r["workload"] != w or float(r["payload_MBps"]) <= 0:
                    continue
                c = min(max(int(r["auto_limit_end"]), min(conns)), max(conns))
                x, y = sx(c), sy(float(r["payload_MBps"]))
                out.append('<rect x="%.1f" y="%.1f" width="8" height="8" fill="%s"/>'
                           % (x - 4, y - 4, colour[t]))
                out.append('<text x="%.1f" y="%.1f" fill="%s">auto</text>' % (x + 6, y - 6, colour[t]))

    ly = TOP + PANEL_H + BOTTOM + 10
    for i, t in enumerate(targets):
        y = ly + 20 * i
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>'
                   % (LEFT, y, LEFT + 30, y, colour[t]))
        out.append('<text x="%d" y="%d">%s</text>' % (LEFT + 36, y + 4, escape("vhdup → " + t)))
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" '
                   'stroke-dasharray="6,4"/>' % (LEFT + 300, y, LEFT + 330, y, colour[t]))
        out.append('<text x="%d" y="%d">%s</text>' % (LEFT + 336, y + 4, escape("curl ceiling → " + t)))
    y = ly + 20 * len(targets)
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444" stroke-dasharray="1,3" '
               'stroke-width="1.5"/>' % (LEFT, y, LEFT + 30, y))
    out.append('<text x="%d" y="%d">WAN link rate (tbf)</text>' % (LEFT + 36, y + 4))
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
