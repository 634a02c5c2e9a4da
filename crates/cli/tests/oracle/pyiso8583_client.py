"""An ISO 8583 client built on pyiso8583 (default_ascii): connects to HOST PORT, sends the
messages given as JSON lines on stdin (each {"t": MTI, "2": ..., ...}), each after a 2-byte
big-endian length, and prints each answer decoded by pyiso8583 as a JSON line. Requests are
all sent first, then the answers read: several are in flight on the one connection."""
import json
import socket
import struct
import sys

import iso8583
from iso8583.specs import default_ascii as spec

host, port = sys.argv[1], int(sys.argv[2])
docs = [json.loads(line) for line in sys.stdin if line.strip()]
sock = socket.create_connection((host, port), timeout=10)
for doc in docs:
    raw, _ = iso8583.encode(doc, spec)
    sock.sendall(struct.pack(">H", len(raw)) + bytes(raw))


def read_exactly(n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("the server closed the connection")
        buf += chunk
    return buf


for _ in docs:
    (n,) = struct.unpack(">H", read_exactly(2))
    answer, _ = iso8583.decode(bytearray(read_exactly(n)), spec)
    print(json.dumps({k: v for k, v in answer.items() if k != "p"}), flush=True)
