# Runs COPIES copies of a load command at once and measures a server's CPU time (utime + stime from /proc/PID/stat,
# sampled every 20 ms) while they run. Each copy's stdout goes to OUT.N and its stderr to OUT.N.err (N from 0).
# Usage: cpuwin.py PID WINDOW COPIES OUT COMMAND...
#   WINDOW > 0: the command measures the last WINDOW seconds before it exits (the C reference's -d: it connects and
#               handshakes first, outside its window): the server's CPU is read over that window only, 50 ms in from
#               each end. WINDOW = 0: over the whole run, from the start to the last exit.
# Prints "cpu_s window_s wall_s": the server's CPU seconds over the window, the window's length in seconds, and the
# wall time from the start to the last exit. Exit status 1 if the server's stat could not be read.
import os, subprocess, sys, time

pid, window, copies, out, cmd = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
tick = os.sysconf("SC_CLK_TCK")

def cpu():
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # fields 14 and 15 of stat(5), counted after the comm
    except (OSError, IndexError, ValueError):
        return None

samples = []
start = time.monotonic()
procs = []
for n in range(copies):
    with open(f"{out}.{n}", "w") as so, open(f"{out}.{n}.err", "w") as se:
        procs.append(subprocess.Popen(cmd, stdout=so, stderr=se))
first_exit = None
while True:
    now, c = time.monotonic(), cpu()
    if c is None:
        break
    samples.append((now, c))
    running = [p for p in procs if p.poll() is None]
    if first_exit is None and len(running) < len(procs):
        first_exit = now
    if not running:
        break
    time.sleep(0.02)
for p in procs:
    p.wait()
end = time.monotonic()
if len(samples) < 2:
    sys.exit(1)
if window > 0:
    last = first_exit if first_exit is not None else end
    inside = [s for s in samples if last - window + 0.05 <= s[0] <= last - 0.05]
else:
    inside = samples
if len(inside) < 2:
    sys.exit(1)
(t1, c1), (t2, c2) = inside[0], inside[-1]
print(f"{c2 - c1:.3f} {t2 - t1:.3f} {end - start:.3f}")
