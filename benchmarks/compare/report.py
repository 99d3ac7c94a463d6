# Writes $OUT.md (a markdown table) and $OUT.svg (a plot) from the tab-separated files compare.sh
# wrote ($RUNS, $MEMORY, $STARTUP) and the environment it exports. python3 standard library only.
import os, platform, time
from svgplot import LogBars

E = os.environ
runs = [l.rstrip("\n").split("\t") for l in open(E["RUNS"]) if l.strip()]
data = {}
for mode, lg, c, p, server, rps, p50, p99, errors in runs:
    data[(mode, lg, int(c), int(p), server)] = (rps, p50, p99, errors)
keys = []
for mode, lg, c, p, server, *_ in runs:
    k = (mode, lg, int(c), int(p))
    if k not in keys:
        keys.append(k)

def num(s):
    try:
        return float(s)
    except ValueError:
        return None

def fmt_rps(s):
    v = num(s)
    return "failed" if v is None else f"{v:,.0f}"

def fmt_us(s):
    v = num(s)
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")

lgname = {"dotnet": "TinyServer.LoadGen", "c": "C reference"}
md = []
md.append("# TinyServer and Redis under the same load")
md.append("")
command = f"DURATION={E['DURATION']} "
for name in ("PLAIN", "CONNS", "PIPELINES", "MODES", "LOADGENS", "SKIP", "SERVER_ENV", "SERVER_DIR"):
    if E.get(name + "_SET"):
        command += f"{name}=\"{E[name]}\" "
md.append(f"Written by `benchmarks/compare.sh` on {time.strftime('%Y-%m-%d %H:%M %Z')}: `{command}benchmarks/compare.sh`.")
md.append("")
md.append(f"- Machine: {E['CPU_MODEL']}, {E['NCPU']} CPUs, Linux {platform.release()}; "
          f"load average {E['LOAD_BEFORE']} before, {E['LOAD_AFTER']} after (other work shares this machine).")
md.append(f"- TinyServer: {'Release build from `' + E['SERVER_DIR'] + '`' if E.get('SERVER_DIR_SET') else ('Native AOT publish' if E['BUILD'] == 'aot' else 'Release build (JIT)')} on .NET {E['RUNTIME']}, `--port 0 --bind 127.0.0.1 --max-connections 20000`"
          + (f", environment `{E['SERVER_ENV']}`" if E['SERVER_ENV'] else "") + ".")
md.append(f"- Redis {E['REDIS_VERSION']}: `redis-server --save '' --appendonly no --protected-mode yes --bind 127.0.0.1 "
          "--port P --daemonize no --maxclients 19000`.")
md.append(f"- Request: `ECHO hello` ({E['DURATION']} s per run after connecting; a warm-up of 2 s per server and pipeline depth before). "
          "pinned: server on CPU 0 (`taskset -a -p -c 0 PID`), load generator on CPU 1 (`taskset -c 1`); "
          "unpinned: no affinity.")
for n in filter(None, E["NOTES_TEXT"].split("\n")):
    md.append(f"- {n}")
md.append("")
if keys:
    md.append("## Throughput and latency")
    md.append("")
    md.append("| Pinning | Load generator | Connections | Pipeline | TinyServer requests/s | p50 µs | p99 µs "
              "| Redis requests/s | p50 µs | p99 µs | TinyServer / Redis |")
    md.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for k in keys:
    t = data.get(k + ("tinyserver",), ("-",) * 4)
    r = data.get(k + ("redis",), ("-",) * 4)
    tv, rv = num(t[0]), num(r[0])
    ratio = f"{tv / rv:.2f}" if tv and rv else "-"
    err = []
    for name, row in (("TinyServer", t), ("Redis", r)):
        if row[3] not in ("0", "-"):
            err.append(f"{name} errors: {row[3]}")
    md.append(f"| {k[0]} | {lgname[k[1]]} | {k[2]:,} | {k[3]} | {fmt_rps(t[0])} | {fmt_us(t[1])} | {fmt_us(t[2])} "
              f"| {fmt_rps(r[0])} | {fmt_us(r[1])} | {fmt_us(r[2])} | {ratio}{' (' + '; '.join(err) + ')' if err else ''} |")
if keys:
    md.append("")
    md.append("Latency is per request, from its write to its reply, each pipelined request timed on its own.")
    md.append("")

mem = [l.rstrip("\n").split("\t") for l in open(E["MEMORY"]) if l.strip()]
if mem:
    md.append("## Idle memory per held connection")
    md.append("")
    holder = "the C reference `--connect-only -c N -d 5 --connect-batch 64`" if E["CLG"] else "a python3 script (the C reference is absent)"
    md.append(f"A fresh server; RSS (`VmRSS`) after one answered connection, then 2 s after {int(E['HOLD']):,} idle "
              f"connections are open (held by {holder}; TinyServer connections count once their banner arrived).")
    md.append("")
    md.append("| Server | RSS before | RSS holding | Connections held | (RSS held - RSS before) / connections |")
    md.append("|---|---:|---:|---:|---:|")
    for server, before, during, held, probe in mem:
        b, d, h = int(before), int(during), int(held)
        per = f"{(d - b) / h:.1f} KiB" if h else "-"
        md.append(f"| {'TinyServer' if server == 'tinyserver' else 'Redis'} | {b / 1024:.1f} MiB | {d / 1024:.1f} MiB | {h:,} | {per} |")
    md.append("")
    if E["TS_RSS_AFTER_LOAD"]:
        md.append(f"After the load runs above, before they were stopped: TinyServer RSS {int(E['TS_RSS_AFTER_LOAD']) / 1024:.1f} MiB, "
                  f"Redis {int(E['RD_RSS_AFTER_LOAD']) / 1024:.1f} MiB.")
        md.append("")

st = [l.rstrip("\n").split("\t") for l in open(E["STARTUP"]) if l.strip()]
if st:
    md.append("## Startup to the first answered connection")
    md.append("")
    md.append(f"From starting the process to the first connection's banner (TinyServer, the apphost "
              f"`TinyServer.Server --port P --bind 127.0.0.1`) or `+PONG` (Redis), connecting every millisecond; "
              f"{E['STARTUP_RUNS']} starts each.")
    md.append("")
    md.append("| Server | Median ms | Min ms | Max ms |")
    md.append("|---|---:|---:|---:|")
    for row in st:
        name = "TinyServer" if row[0] == "tinyserver" else "Redis"
        md.append(f"| {name} | " + " | ".join(row[1:4]) + " |")
    md.append("")

open(E["OUT"] + ".md", "w").write("\n".join(md))
if not keys:
    raise SystemExit(0)  # no plaintext runs (PLAIN=0): no plot

# The plot: requests/s (log scale) for each connections x pipeline, one panel per pinning mode.
modes = [m for m in ("pinned", "unpinned") if any(k[0] == m for k in keys)]
series = [(lg, s) for lg in ("dotnet", "c") for s in ("tinyserver", "redis") if any(k[1] == lg for k in keys)]
colors = {("dotnet", "tinyserver"): "#1f5fa8", ("dotnet", "redis"): "#c0392b",
          ("c", "tinyserver"): "#7fb2e5", ("c", "redis"): "#f1948a"}
groups = []
for k in keys:
    g = (k[2], k[3])
    if g not in groups:
        groups.append(g)
plot = LogBars([num(v[0]) for v in data.values()], len(modes), len(groups), len(series), 300, 70,
               "TinyServer and Redis, ECHO hello, requests/s (log scale)",
               "under each group: TinyServer / Redis requests/s, for each load generator in the order of the legend")
plot.legend((f"{'TinyServer' if s == 'tinyserver' else 'Redis'}, {lgname[lg]}", colors[(lg, s)]) for lg, s in series)
for mi, mode in enumerate(modes):
    y0 = plot.panel(mi, mode)
    for gi, (c, p) in enumerate(groups):
        for si, (lg, s) in enumerate(series):
            v = data.get((mode, lg, c, p, s))
            if v and num(v[0]):
                plot.bar(y0, gi, si, num(v[0]), colors[(lg, s)],
                         f"{mode} {lgname[lg]} c={c} P={p} {s}: {num(v[0]):,.0f} req/s, p99 {v[2]} us")
        plot.label(y0, gi, 16, f"c={c:,} P={p}")
        ratios = []
        for lg in ("dotnet", "c"):
            t, r = data.get((mode, lg, c, p, "tinyserver")), data.get((mode, lg, c, p, "redis"))
            if t and r and num(t[0]) and num(r[0]):
                ratios.append(f"{num(t[0]) / num(r[0]):.2f}")
        if ratios:
            plot.label(y0, gi, 32, " / ".join(ratios), "#555")
    plot.axis(y0)
plot.write(E["OUT"] + ".svg")
