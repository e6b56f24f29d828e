#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""tierbench report: the table, the SVG plots and the targets of a results directory.

    report.py [--full] [--primary POLICY] RESULTS_DIR

Reads RESULTS_DIR/<workload>--<policy>.csv (written by tierbench in the guest, collected
by bench/tierbench-run.sh) and RESULTS_DIR/<workload>--<policy>.status (the guest's exit
status), prints the table, writes RESULTS_DIR/summary.csv, RESULTS_DIR/results.md and
RESULTS_DIR/ftas-<workload>.svg (FTAS over time per policy, and the oracle), and checks
the targets of issue 5 for every tiermm policy that ran:

  T1  FTAS within 90% of the oracle on the static hot set (gups), steady state;
  T2  ahead of Linux's tiering (tpp) on every workload (mean FTAS, steady state);
  T3  runtime CPU under 2% of one core on average (as measured in the TCG guest).

Exit status: 0; 1 if a run failed, or (with --full) if the primary tiermm policy
(default tiermm-scan) missed a target or did not run. Python standard library only.
"""
import argparse
import csv
import glob
import html
import os
import sys

WORKLOAD_ORDER = ["gups", "zipf", "zipf-shift", "btree"]
POLICY_ORDER = ["first-touch", "tpp", "damon", "tiermm-scan", "tiermm-damon", "tiermm-perf"]
COLORS = {
    "first-touch": "#7f7f7f",
    "tpp": "#d62728",
    "damon": "#ff7f0e",
    "tiermm-scan": "#1f77b4",
    "tiermm-damon": "#2ca02c",
    "tiermm-perf": "#9467bd",
}


def order_key(name, order):
    return (order.index(name) if name in order else len(order), name)


def parse_kv(text):
    out = {}
    for tok in text.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
    return out


def load_run(path):
    """Header key=values, rows (dicts of floats) and the summary of one CSV."""
    meta, rows, summary, header = {}, [], {}, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line.startswith("# summary "):
                summary = parse_kv(line[len("# summary "):])
            elif line.startswith("# "):
                body = line[2:]
                # free-text values (what=, policy_setup=...) keep their spaces
                key = body.split("=", 1)[0]
                if key in ("what", "policy_setup", "policy_cpu_how", "policy_final"):
                    meta[key] = body.split("=", 1)[1] if "=" in body else ""
                else:
                    meta.update(parse_kv(body))
            elif header is None:
                header = line.split(",")
            else:
                vals = line.split(",")
                if len(vals) != len(header):
                    continue
                try:
                    rows.append({k: float(v) for k, v in zip(header, vals)})
                except ValueError:
                    continue
    return meta, rows, summary


def fnum(s, default=float("nan")):
    try:
        return float(s)
    except (TypeError, ValueError):
        return default


def fmt_t90(s):
    t = fnum(s.get("t90_start_s"))
    if t != t or t < 0:
        return "never"
    return "%.0f s" % t


def fmt_shift(s):
    n = int(fnum(s.get("shifts"), 0))
    if not n:
        return ""
    r = int(fnum(s.get("shifts_reached"), 0))
    if not r:
        return "0/%d shifts" % n
    return "%d/%d shifts, mean %.0f s" % (r, n, fnum(s.get("t90_shift_mean_s")))


def svg_plot(workload, runs, path):
    """FTAS over time, one line per policy, the oracle dashed."""
    W, H = 760, 420
    left, right, top, bottom = 60, 170, 40, 50
    pw, ph = W - left - right, H - top - bottom
    tmax = max((r["t_s"] for _, (_, rows, _) in runs for r in rows), default=1.0) or 1.0

    def x(t):
        return left + pw * t / tmax

    def y(v):
        v = min(max(v, 0.0), 1.0)
        return top + ph * (1.0 - v)

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' % (W, H, W, H),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="15">%s: fast-tier access share over time</text>'
           % (left, html.escape(workload))]
    # grid and axes
    for i in range(0, 11, 2):
        v = i / 10.0
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                   % (left, y(v), left + pw, y(v)))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%.1f</text>' % (left - 6, y(v) + 4, v))
    step = 10 if tmax > 40 else 5
    if tmax > 200:
        step = 50
    t = 0
    while t <= tmax + 1e-9:
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>'
                   % (x(t), top, x(t), top + ph))
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%g</text>' % (x(t), top + ph + 16, t))
        t += step
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>'
               % (left, top, pw, ph))
    out.append('<text x="%d" y="%d" text-anchor="middle">time since the workload started (s)</text>'
               % (left + pw // 2, H - 12))
    out.append('<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">FTAS</text>'
               % (top + ph // 2, top + ph // 2))
    # the oracle (from any run: the same workload and capacity), a step line
    for _, (_, rows, _) in runs[:1]:
        pts = []
        for r in rows:
            if pts:
                pts.append("%.1f,%.1f" % (x(r["t_s"]), float(pts[-1].split(",")[1])))
            pts.append("%.1f,%.1f" % (x(r["t_s"]), y(r["oracle"])))
        if pts:
            out.append('<polyline points="%s" fill="none" stroke="#000" stroke-dasharray="6,4" '
                       'stroke-width="1.2"/>' % " ".join(pts))
    ly = top + 10
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#000" stroke-dasharray="6,4"/>'
               % (left + pw + 12, ly, left + pw + 40, ly))
    out.append('<text x="%d" y="%d">oracle</text>' % (left + pw + 46, ly + 4))
    for policy, (_, rows, _) in runs:
        color = COLORS.get(policy, "#8c564b")
        pts = " ".join("%.1f,%.1f" % (x(r["t_s"]), y(r["ftas"])) for r in rows)
        out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>' % (pts, color))
        ly += 20
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>'
                   % (left + pw + 12, ly, left + pw + 40, ly, color))
        out.append('<text x="%d" y="%d">%s</text>' % (left + pw + 46, ly + 4, html.escape(policy)))
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--full", action="store_true",
                    help="exit non-zero if the primary tiermm policy misses a target")
    ap.add_argument("--primary", default="tiermm-scan")
    a = ap.parse_args()

    # The guests' clock: emulated (TCG: CPU shares inflated) or following
    # instructions (QEMU -icount, written by tierbench-run.sh).
    timebase = "TCG-inflated"
    tb_path = os.path.join(a.results, "timebase")
    if os.path.exists(tb_path):
        with open(tb_path) as f:
            timebase = "instruction time, " + f.read().strip()
    runs = {}      # workload -> policy -> (meta, rows, summary)
    failed = []    # (workload, policy, status)
    skipped = []
    for st in sorted(glob.glob(os.path.join(a.results, "*--*.status"))):
        base = os.path.basename(st)[:-len(".status")]
        workload, policy = base.split("--", 1)
        with open(st) as f:
            status = f.read().strip()
        csvp = os.path.join(a.results, base + ".csv")
        if status == "77":
            skipped.append((workload, policy))
            continue
        if status != "0" or not os.path.exists(csvp):
            failed.append((workload, policy, status))
            continue
        meta, rows, summary = load_run(csvp)
        if not rows or not summary:
            failed.append((workload, policy, "no data"))
            continue
        runs.setdefault(workload, {})[policy] = (meta, rows, summary)

    cols = ["workload", "policy", "mean FTAS", "oracle", "FTAS/oracle", "time to 90%",
            "after shifts", "modeled ns/access", "vs first-touch", "CPU s", "CPU %", "CPU % steady",
            "pages migrated", "fast pages/cap", "workload Mops/s"]
    table = []
    summary_rows = []
    for workload in sorted(runs, key=lambda w: order_key(w, WORKLOAD_ORDER)):
        base_ns = None
        if "first-touch" in runs[workload]:
            base_ns = fnum(runs[workload]["first-touch"][2].get("model_ns_per_access"))
        for policy in sorted(runs[workload], key=lambda p: order_key(p, POLICY_ORDER)):
            meta, rows, s = runs[workload][policy]
            ns = fnum(s.get("model_ns_per_access"))
            cap = fnum(s.get("capacity_pages"))
            table.append([
                workload, policy,
                "%.3f" % fnum(s.get("mean_ftas")),
                "%.3f" % fnum(s.get("mean_oracle")),
                "%.2f" % fnum(s.get("ftas_over_oracle")),
                fmt_t90(s), fmt_shift(s),
                "%.0f" % ns,
                ("%.2fx" % (base_ns / ns)) if base_ns and ns else "",
                "%.1f" % fnum(s.get("policy_cpu_s")),
                "%.1f" % fnum(s.get("policy_cpu_pct")),
                "%.1f" % fnum(s.get("steady_cpu_pct")),
                "%d" % int(fnum(s.get("pages_migrated"), 0)),
                "%.2f" % (fnum(s.get("mean_fast_pages")) / cap if cap else float("nan")),
                "%.2f" % (fnum(s.get("ops_per_s")) / 1e6),
            ])
            summary_rows.append(dict(s, workload=workload, policy=policy))

    widths = [max(len(c), *(len(r[i]) for r in table)) if table else len(c)
              for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(cols)),
             "  ".join("-" * w for w in widths)]
    for r in table:
        lines.append("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)))
    print("\n".join(lines))

    md = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    md += ["| " + " | ".join(r) + " |" for r in table]

    if summary_rows:
        keys = ["workload", "policy"] + [k for k in summary_rows[0] if k not in ("workload", "policy")]
        with open(os.path.join(a.results, "summary.csv"), "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            wr.writeheader()
            wr.writerows(summary_rows)

    for workload, pol in runs.items():
        ordered = sorted(pol.items(), key=lambda kv: order_key(kv[0], POLICY_ORDER))
        svg_plot(workload, ordered, os.path.join(a.results, "ftas-%s.svg" % workload))

    # targets, for every tiermm policy that ran
    notes = []
    tiermm = sorted({p for w in runs.values() for p in w if p.startswith("tiermm-")},
                    key=lambda p: order_key(p, POLICY_ORDER))
    primary_ok = None
    for policy in tiermm:
        checks = []
        g = runs.get("gups", {}).get(policy)
        if g:
            r = fnum(g[2].get("ftas_over_oracle"))
            checks.append(("T1 gups FTAS >= 90% of the oracle", r >= 0.9, "%.2f" % r))
        else:
            checks.append(("T1 gups FTAS >= 90% of the oracle", None, "gups not run"))
        for workload in sorted(runs, key=lambda w: order_key(w, WORKLOAD_ORDER)):
            mine = runs[workload].get(policy)
            tpp = runs[workload].get("tpp")
            if mine and tpp:
                f_m, f_t = fnum(mine[2].get("mean_ftas")), fnum(tpp[2].get("mean_ftas"))
                checks.append(("T2 %s ahead of tpp" % workload, f_m > f_t,
                               "%.3f vs %.3f" % (f_m, f_t)))
        cpus = [fnum(w[policy][2].get("policy_cpu_pct")) for w in runs.values() if policy in w]
        if cpus:
            mean_cpu = sum(cpus) / len(cpus)
            checks.append(("T3 CPU < 2%% of a core (%s)" % timebase, mean_cpu < 2.0,
                           "%.2f%%" % mean_cpu))
        ok = all(c[1] is not False for c in checks) and any(c[1] for c in checks)
        if policy == a.primary:
            primary_ok = ok
        for name, res, val in checks:
            tag = "n/a " if res is None else ("met " if res else "MISS")
            notes.append("%s  %-14s %-42s %s" % (tag, policy, name, val))

    print()
    if notes:
        print("targets (issue 5):")
        print("\n".join("  " + n for n in notes))
    else:
        print("targets (issue 5): no tiermm policy ran; nothing to check")
    for w, p in skipped:
        print("skipped: %s x %s (policy not available in this build or guest)" % (w, p))
    for w, p, st in failed:
        print("FAILED: %s x %s (status %s; see %s--%s.log)" % (w, p, st, w, p))

    with open(os.path.join(a.results, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n\n")
        if notes:
            f.write("Targets:\n\n```\n" + "\n".join(notes) + "\n```\n")
        for w, p in skipped:
            f.write("\nskipped: %s x %s\n" % (w, p))
        for w, p, st in failed:
            f.write("\nFAILED: %s x %s (status %s)\n" % (w, p, st))

    if failed:
        return 1
    if a.full and primary_ok is not True:
        print("full run: the primary tiermm policy (%s) %s" %
              (a.primary, "missed a target" if primary_ok is False else "did not run"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
