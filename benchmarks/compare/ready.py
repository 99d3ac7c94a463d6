# Waits until a server answers: the banner (tinyserver) or +PONG (redis); over TLS (no certificate check) when the
# fourth argument is "tls". Exit 1 after the timeout.
import socket, ssl, sys, time
kind, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
tls = len(sys.argv) > 4 and sys.argv[4] == "tls"
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            s = context.wrap_socket(raw) if tls else raw
            if kind == "redis":
                s.sendall(b"PING\r\n")
            data = b""
            while b"\n" not in data:
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"WELCOME" if kind == "tinyserver" else b"+PONG"):
                sys.exit(0)
    except (OSError, ssl.SSLError):
        pass
    time.sleep(0.05)
sys.exit(1)
