# Starts a server RUNS times and times each start until the first connection is answered (banner, or +PONG).
# Usage: startup.py KIND RUNS COMMAND... (the word PORT in COMMAND is replaced by a free port below the kernel's
# ephemeral range: TinyServer takes 1025-49151 only)
import random, signal, socket, statistics, subprocess, sys, time
kind, runs, template = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def free_port():
    while True:
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                pass

times = []
for _ in range(runs):
    port = free_port()
    cmd = [str(port) if a == "PORT" else a for a in template]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = False
    try:
        while time.monotonic() - t0 < 30 and p.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    if kind == "redis":
                        c.sendall(b"PING\r\n")
                    data = c.recv(256)
                    if data.startswith(b"WELCOME" if kind == "tinyserver" else b"+PONG"):
                        ok = True
                        break
            except OSError:
                time.sleep(0.001)
        elapsed = (time.monotonic() - t0) * 1000
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()
    if not ok:
        print(f"startup.py: {' '.join(cmd)}: no answer (exit code {p.returncode})", file=sys.stderr)
        print("- - -"); sys.exit(1)
    times.append(elapsed)
    time.sleep(0.2)
print(f"{statistics.median(times):.0f} {min(times):.0f} {max(times):.0f}")
