"""Holds N connections to a proxy, each sending its request one byte a second: half stall in
the request head, half in the body. A connection the proxy closes is opened again at once.
Prints how many closes it saw. Used by bench/run: python3 bench/slowloris.py HOST PORT N SECONDS [KEY]
(with KEY, requests carry it, so they pass client authentication and reach their body)."""
import socket
import sys
import time

host, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
auth = f"Authorization: Bearer {sys.argv[5]}\r\n".encode() if len(sys.argv) > 5 else b""
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n" + auth + b"Content-Length: 100000\r\n"


def opened(index):
    sock = socket.create_connection((host, port))
    sock.setblocking(False)
    if index % 2:  # stalls in the body: the head goes whole
        sock.sendall(HEAD + b"\r\n")
    return [sock, 0]


conns = [opened(i) for i in range(count)]
closed = 0
deadline = time.time() + seconds
while time.time() < deadline:
    for index, conn in enumerate(conns):
        sock, sent = conn
        try:
            if sock.recv(65536) == b"":
                raise ConnectionError
        except BlockingIOError:
            pass
        except OSError:
            sock.close()
            closed += 1
            conns[index] = opened(index)
            continue
        try:
            sock.send(HEAD[sent % len(HEAD):][:1] if index % 2 == 0 else b"x")
            conn[1] = sent + 1
        except OSError:
            sock.close()
            closed += 1
            conns[index] = opened(index)
    time.sleep(1)
for sock, _ in conns:
    sock.close()
print(closed)
