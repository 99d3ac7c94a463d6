# Holds N idle connections (the fallback when the C reference is absent): dials 64 at a time; a TinyServer
# connection counts once its banner has arrived, a Redis one once connected. Prints "HOLDING connected=N", holds,
# then closes everything.
import selectors, socket, sys, time
kind, port, count, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
banner = kind == "tinyserver"
sel = selectors.DefaultSelector()
held, pending, started, failed = [], {}, 0, 0
t0 = time.monotonic()
deadline = t0 + 60
while (started < count or pending) and time.monotonic() < deadline:
    while started < count and len(pending) < 64:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        pending[s] = b""
        sel.register(s, selectors.EVENT_WRITE)
        started += 1
    for key, ev in sel.select(0.1):
        s = key.fileobj
        if ev & selectors.EVENT_WRITE:
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                sel.unregister(s); s.close(); del pending[s]; failed += 1
            elif banner:
                sel.modify(s, selectors.EVENT_READ)
            else:
                sel.unregister(s); held.append(s); del pending[s]
        else:
            try:
                data = s.recv(256)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s); s.close(); del pending[s]; failed += 1
                continue
            pending[s] += data
            if b"\n" in pending[s]:
                sel.unregister(s); held.append(s); del pending[s]
print(f"HOLDING connected={len(held)} failed={failed + len(pending)} connect_s={time.monotonic() - t0:.3f}", flush=True)
time.sleep(hold)
print(f"held connected={len(held)}", flush=True)
