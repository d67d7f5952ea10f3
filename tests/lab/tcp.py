"""A tiny TCP server and client for reachability checks between lab namespaces.

    python tests/lab/tcp.py listen ADDRESS PORT           prints "listening", answers each connection with a banner
    python tests/lab/tcp.py connect ADDRESS PORT TIMEOUT  exit 0 when the banner arrives in time, 1 otherwise

Standard library only, run as a script (``python -I -S``) so that it starts fast.
"""

import socket
import sys
import time

BANNER = b'nql-ok\n'


def listen(address, port):
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(16)
    sys.stdout.write('listening %s %s\n' % (address, server.getsockname()[1]))
    sys.stdout.flush()
    sys.stdout.close()
    while True:
        conn, _unused_peer = server.accept()
        try:
            conn.settimeout(2)
            conn.sendall(BANNER)
        except OSError:
            pass
        finally:
            conn.close()


def connect(address, port, timeout):
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            data = b''
            while not data.endswith(b'\n'):
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = conn.recv(64)
                if not chunk:
                    break
                data += chunk
    except OSError as exc:
        sys.stderr.write('tcp connect %s:%s: %s\n' % (address, port, exc))
        return 1
    if data != BANNER:
        sys.stderr.write('tcp connect %s:%s: unexpected answer %r\n' % (address, port, data))
        return 1
    return 0


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[0] == 'listen':
        listen(args[1], int(args[2]))
        return 0
    if len(args) == 4 and args[0] == 'connect':
        return connect(args[1], int(args[2]), float(args[3]))
    sys.stderr.write(__doc__)
    return 2


if __name__ == '__main__':
    sys.exit(main())
