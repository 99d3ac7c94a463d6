# Writes $TLS_OUT.md (markdown tables) and $TLS_OUT.svg (a plot) from the tab-separated file compare.sh's TLS step
# wrote ($TLS_RUNS) and the environment it exports. python3 standard library only.
import os, platform, statistics, time
from svgplot import LogBars

E = os.environ
rows = [l.rstrip("\n").split("\t") for l in open(E["TLS_RUNS"]) if l.strip()]

def num(s):
    try:
        return float(s)
    except ValueError:
        return None

# Medians over rounds: (mode, cert, proto, c, p, server) -> (rate, p50 or mean ms, p99, errors summed, cpu)
grouped, keys = {}, []
for mode, cert, proto, c, p, server, rate, p50, p99, errors, cpu, _round in rows:
    point = (mode, cert, proto, int(c), p)
    if point not in keys:
        keys.append(point)
    grouped.setdefault(point + (server,), []).append((rate, p50, p99, errors, cpu))

def median(values):
    vs = [num(v) for v in values if num(v) is not None]
    return statistics.median(vs) if vs else None

data = {}
for k, runs in grouped.items():
    failed = sum(1 for r in runs if r[3] == "fail")
    errors = sum(int(r[3]) for r in runs if r[3].isdigit())
    data[k] = (median(r[0] for r in runs), median(r[1] for r in runs), median(r[2] for r in runs),
               errors, failed, median(r[4] for r in runs))

def fmt_rate(v):
    return "failed" if v is None else f"{v:,.0f}"

def fmt_us(v):
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")

def fmt_cpu(v):
    return "-" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.2f}" if v < 1 else f"{v:.1f}")

def ratio(t, r):
    return f"{t / r:.2f}" if t and r else "-"

def problems(t, r):
    out = []
    for name, d in (("TinyServer", t), ("Redis", r)):
        if d is None:
            continue
        if d[3]:
            out.append(f"{name} errors: {d[3]}")
        if d[4]:
            out.append(f"{name}: {d[4]} run(s) failed")
    return f" ({'; '.join(out)})" if out else ""

certname = {"ecdsa": "ECDSA P-256", "rsa": "RSA 2048"}
rounds = int(E["TLS_ROUNDS"])
clients = E["TLS_HANDSHAKE_CLIENTS"]
md = ["# TinyServer and Redis over TLS, under the same load", ""]
command = f"DURATION={E['DURATION']} "
for name in ("PLAIN", "CONNS", "PIPELINES", "SKIP", "TLS_CERTS", "TLS_LOADS", "TLS12_LOADS", "TLS_MODES",
             "TLS_HANDSHAKE_CLIENTS", "TLS_ROUNDS", "SERVER_ENV", "SERVER_DIR"):
    if E.get(name + "_SET"):
        command += f"{name}=\"{E[name]}\" "
if E["EXTRAS"] == "0":
    command += "EXTRAS=0 "
md.append(f"Written by `benchmarks/compare.sh` on {time.strftime('%Y-%m-%d %H:%M %Z')}: `{command}benchmarks/compare.sh`.")
md.append("")
md.append(f"- Machine: {E['CPU_MODEL']}, {E['NCPU']} CPUs, Linux {platform.release()}, OpenSSL {E['OPENSSL_VERSION']}; "
          f"load average {E['TLS_LOAD_BEFORE']} before the TLS runs, {E['TLS_LOAD_AFTER']} after (other work shares this machine).")
md.append(f"- TinyServer: {'Release build from `' + E['SERVER_DIR'] + '`' if E.get('SERVER_DIR_SET') else ('Native AOT publish' if E['BUILD'] == 'aot' else 'Release build (JIT)')} "
          f"on .NET {E['RUNTIME']}, `--port 0 --bind 127.0.0.1 --max-connections 20000 --tls-port 0 --tls-cert CERT --tls-key KEY`"
          + (f", environment `{E['SERVER_ENV']}`" if E['SERVER_ENV'] else "") + ".")
md.append(f"- Redis {E['REDIS_VERSION']}: `redis-server --save '' --appendonly no --protected-mode yes --bind 127.0.0.1 "
          "--port 0 --tls-port P --tls-cert-file CERT --tls-key-file KEY --tls-auth-clients no --daemonize no --maxclients 19000`.")
made = {"ecdsa": "ECDSA P-256 (`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256`)",
        "rsa": "RSA 2048 (`openssl req -x509 -newkey rsa:2048`)"}
md.append(f"- Certificates: self-signed for 127.0.0.1, made for this run: {', '.join(made[c] for c in E['TLS_CERTS'].split())}; "
          "both servers load the same certificate and key files.")
md.append(f"- Requests: the C reference load generator built with TLS (`gcc -DWITH_TLS ... -lssl -lcrypto`), "
          f"`loadgen-tls --tls [--tls-max 1.2] -c C -P P -d {E['DURATION']} --expect-prefix \"ECHO hello\"` (Redis: "
          "`--redis -m \"ECHO hello\" --expect-prefix '$5'`), no certificate check. It connects and handshakes before its "
          "window, so these rows are requests over established sessions. A warm-up of 2 s per server at `-c 50`, `-P 1` "
          "and `-P 16` before each certificate's runs.")
md.append("- Server CPU per request: the server process's utime + stime (`/proc/PID/stat`, sampled every 20 ms) over the "
          "load generator's measured window, 50 ms in from each end, divided by the requests in it (requests/s × window).")
md.append(f"- Handshakes: {clients} `openssl s_time -connect 127.0.0.1:P -new -time {E['DURATION']}` at once. Each makes "
          "full handshakes one after another, a new session each on a fresh connection, and closes right after the "
          "handshake, sending no request and reading nothing (the same for both servers; TinyServer's banner is not read). "
          "Handshakes/s: all clients' handshakes over the wall time; mean ms: one handshake as a client sees it; server CPU "
          "over the whole run divided by the handshakes. s_time measures no percentiles. The C reference handshakes before "
          "its window, so s_time, a neutral client, is the referee for both servers' handshakes; TinyServer.LoadGen's "
          "handshake rows (below) add a request per session and resumed handshakes.")
md.append(f"- Pinning: {E['TLS_MODES']} (pinned: server on CPU 0, load generator on CPU 1; unpinned: no affinity). "
          + (f"Medians of {rounds} interleaved rounds." if rounds > 1 else "One round: single runs, not medians."))
lg_on = E.get("TLS_LOADGEN") == "1"
if lg_on:
    md.append(f"- TinyServer.LoadGen (the repository's load generator, JIT) at every TLS 1.3 point, against both servers "
              f"in the same rounds: `--tls --insecure -c C -P P -d {E['DURATION']} --warmup 1 --json` (Redis: `--redis`); "
              f"its handshake rows are new sessions of one request each (`--requests-per-session 1`, "
              f"{E['TLS_HANDSHAKE_CONNS']} connections at once), full, or resumed with the server's TLS 1.3 tickets "
              "(`--tls-resume`, host `localhost`: .NET resumes only for a server name). Server CPU over its measured window.")
    if int(E.get("TLS_HOLD", "0")) > 0:
        md.append(f"- Memory per idle TLS connection: a fresh server, {int(E['TLS_HOLD']):,} TLS 1.3 sessions opened by "
                  "TinyServer.LoadGen (`--tls -c N --rate 1`: one request a second among them all), the server's RSS "
                  "before and while they are held (once all are established on the server's side), divided by the sessions.")
for n in filter(None, E.get("TLS_NOTES_TEXT", "").split("\n")):
    md.append(f"- {n}")
md.append("")

def table(points, title, header, align, source, row, notes=()):
    """A section, when there are points: its title, the table (header: the column names; align: the separator line),
    a row for each point k, row(k, t, r, tt, rr) from TinyServer's (t) and Redis's (r) medians in source, each None
    where that server has none (tt, rr: the same, with Nones for the figures), then the notes."""
    if not points:
        return
    md.extend([f"## {title}", "", header, align])
    for k in points:
        t, r = source.get(k + ("tinyserver",)), source.get(k + ("redis",))
        md.append(row(k, t, r, t or (None,) * 6, r or (None,) * 6))
    md.append("")
    for n in notes:
        md.extend([n, ""])

def s_time_row(point, latency):
    """A row of the C reference and s_time tables: point(k) gives the cells after pinning, certificate and TLS
    version; latency(d) a server's latency cell from its medians d."""
    return lambda k, t, r, tt, rr: (
        f"| {k[0]} | {certname[k[1]]} | {k[2]} | {point(k)} | {fmt_rate(tt[0])} | {latency(tt)} | {fmt_cpu(tt[5])} "
        f"| {fmt_rate(rr[0])} | {latency(rr)} | {fmt_cpu(rr[5])} | {ratio(tt[0], rr[0])}{problems(t, r)} "
        f"| {ratio(tt[5], rr[5])} |")

req = [k for k in keys if k[4] != "hs"]
hs = [k for k in keys if k[4] == "hs"]
table(req, "Requests over TLS",
      "| Pinning | Certificate | TLS | Connections | Pipeline | TinyServer requests/s | p99 µs | CPU µs/request "
      "| Redis requests/s | p99 µs | CPU µs/request | TinyServer / Redis: requests/s | CPU/request |",
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
      data, s_time_row(lambda k: f"{k[3]:,} | {k[4]}", lambda d: fmt_us(d[2])),
      ["Latency is per request, from its write to its reply, each pipelined request timed on its own. "
       "CPU/request below 1: TinyServer spends less CPU time per request than Redis."])
table(hs, "Full handshakes",
      "| Pinning | Certificate | TLS | s_time clients | TinyServer handshakes/s | mean ms | CPU µs/handshake "
      "| Redis handshakes/s | mean ms | CPU µs/handshake | TinyServer / Redis: handshakes/s | CPU/handshake |",
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
      data, s_time_row(lambda k: f"{k[3]}", lambda d: "-" if d[1] is None else f"{d[1]:.2f}"))
lg_rows = [l.rstrip("\n").split("\t") for l in open(E["TLS_LG_RUNS"]) if l.strip()] if lg_on else []
lg, lg_keys = {}, []
for mode, cert, proto, c, p, server, kind, rate, p50, p99, errors, cpu, client, _round in lg_rows:
    k = (mode, cert, proto, int(c), p, kind)
    if k not in lg_keys:
        lg_keys.append(k)
    lg.setdefault(k + (server,), []).append((rate, p50, p99, errors, cpu, client))
lg = {k: (median(r[0] for r in v), median(r[2] for r in v), sum(int(r[3]) for r in v if r[3].isdigit()),
          sum(1 for r in v if r[3] == "fail"), median(r[4] for r in v), median(r[5] for r in v)) for k, v in lg.items()}

def lg_problems(t, r):
    out = [f"{n} errors: {d[2]}" for n, d in (("TinyServer", t), ("Redis", r)) if d and d[2]]
    out += [f"{n}: {d[3]} run(s) failed" for n, d in (("TinyServer", t), ("Redis", r)) if d and d[3]]
    return f" ({'; '.join(out)})" if out else ""

def lg_request_row(k, t, r, tt, rr):
    ct, cr = data.get(k[:5] + ("tinyserver",)), data.get(k[:5] + ("redis",))
    return (f"| {k[0]} | {certname[k[1]]} | {k[3]:,} | {k[4]} | {fmt_rate(tt[0])} | {fmt_us(tt[1])} | {ratio(tt[0], ct and ct[0])} "
            f"| {fmt_rate(rr[0])} | {fmt_us(rr[1])} | {ratio(rr[0], cr and cr[0])} | {ratio(tt[0], rr[0])}{lg_problems(t, r)} "
            f"| {fmt_cpu(tt[5])} | {fmt_cpu(tt[4])} |")

table([k for k in lg_keys if k[5] == "requests"], "Requests over TLS, by TinyServer.LoadGen",
      "| Pinning | Certificate | Connections | Pipeline | TinyServer requests/s | p99 µs | LoadGen / C reference "
      "| Redis requests/s | p99 µs | LoadGen / C reference | TinyServer / Redis | LoadGen CPU µs/request | TinyServer CPU µs/request |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
      lg, lg_request_row,
      ["LoadGen / C reference: TinyServer.LoadGen's requests/s against the C reference's at the same point and server "
       "(table above). LoadGen CPU: the load generator's own CPU time per request, against TinyServer's server CPU."])
table([k for k in lg_keys if k[5] != "requests"], "Handshakes, by TinyServer.LoadGen",
      "| Pinning | Certificate | Handshake | Connections | TinyServer handshakes/s | CPU µs/handshake "
      "| Redis handshakes/s | CPU µs/handshake | TinyServer / Redis: handshakes/s | CPU/handshake |",
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
      lg, lambda k, t, r, tt, rr:
          f"| {k[0]} | {certname[k[1]]} | {k[5]} (TLS 1.3) | {k[3]} | {fmt_rate(tt[0])} | {fmt_cpu(tt[4])} "
          f"| {fmt_rate(rr[0])} | {fmt_cpu(rr[4])} | {ratio(tt[0], rr[0])}{lg_problems(t, r)} | {ratio(tt[4], rr[4])} |",
      ["Each handshake here is a new connection, its handshake, one request and its reply, then QUIT; the server's "
       "CPU per handshake includes that request and the close."])
mem = [l.rstrip("\n").split("\t") for l in open(E["TLS_MEMORY"]) if l.strip()] if lg_on else []
if mem:
    md.append("## Memory per idle TLS connection")
    md.append("")
    md.append("| Certificate | TinyServer KiB per connection | Redis KiB per connection | TinyServer / Redis | sessions held |")
    md.append("|---|---:|---:|---:|---|")
    per = {}
    for cert, server, before, during, held in mem:
        try:
            per[(cert, server)] = ((float(during) - float(before)) / int(held), held)
        except (ValueError, ZeroDivisionError):
            per[(cert, server)] = (None, held)
    for cert in E["TLS_CERTS"].split():
        t, r = per.get((cert, "tinyserver"), (None, "-")), per.get((cert, "redis"), (None, "-"))
        kib = lambda v: "-" if v is None else f"{v:.2f}"
        md.append(f"| {certname[cert]} | {kib(t[0])} | {kib(r[0])} | {ratio(t[0], r[0])} | {t[1]} / {r[1]} |")
    md.append("")
open(E["TLS_OUT"] + ".md", "w").write("\n".join(md))

# The plot: requests/s and handshakes/s (log scale) at each point, one panel per pinning mode and certificate.
panels = []
for k in keys:
    if (k[0], k[1]) not in panels:
        panels.append((k[0], k[1]))
groups = []
for k in keys:
    g = (k[2], k[3], k[4])
    if g not in groups:
        groups.append(g)
colors = {"tinyserver": "#1f5fa8", "redis": "#c0392b"}
plot = LogBars([v[0] for v in data.values()], len(panels), len(groups), 2, 260, 80,
               "TinyServer and Redis over TLS, ECHO hello requests/s and full handshakes/s (log scale)",
               "under each group: TinyServer / Redis; requests: C reference load generator with TLS; "
               "handshakes: openssl s_time -new")
plot.legend((("TinyServer", colors["tinyserver"]), ("Redis", colors["redis"])))
for pi, (mode, cert) in enumerate(panels):
    y0 = plot.panel(pi, f"{certname[cert]}, {mode}")
    for gi, (proto, c, p) in enumerate(groups):
        for si, s in enumerate(("tinyserver", "redis")):
            v = data.get((mode, cert, proto, c, p, s))
            if v and v[0]:
                what = "handshakes/s" if p == "hs" else "req/s"
                tip = f"{certname[cert]} TLS {proto} {mode} " + (f"{c} s_time clients" if p == "hs" else f"c={c} P={p}") \
                    + f" {s}: {v[0]:,.0f} {what}, server CPU {fmt_cpu(v[5])} us each"
                plot.bar(y0, gi, si, v[0], colors[s], tip)
        plot.label(y0, gi, 16, "handshakes" if p == "hs" else f"c={c:,} P={p}")
        plot.label(y0, gi, 30, f"TLS {proto}")
        t, r = data.get((mode, cert, proto, c, p, "tinyserver")), data.get((mode, cert, proto, c, p, "redis"))
        if t and r and t[0] and r[0]:
            plot.label(y0, gi, 46, f"{t[0] / r[0]:.2f}", "#555")
    plot.axis(y0)
plot.write(E["TLS_OUT"] + ".svg")
