#!/usr/bin/env python3
"""tests/integration/dns_server.py — a tiny DNS server for dns_glitch.sh.

  dns_server.py ADDR NAME MODE_FILE IP...

Answers A queries for NAME with the IPs, on UDP ADDR:53. Before each
answer it reads MODE_FILE: "answer" (the default), "silent" (no reply:
the client times out, as when the server restarts or is out of reach),
"servfail" (SERVFAIL) or "nxdomain" (the name does not exist). Other names
get NXDOMAIN. Standard library only."""
import socket
import struct
import sys


def question(msg):
    """(qname in lower case, end offset of the question) of a query."""
    i, labels = 12, []
    while msg[i]:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    return ".".join(labels), i + 5  # the zero byte, QTYPE, QCLASS


def reply(msg, rcode, ips):
    _, end = question(msg)
    qid = msg[:2]
    flags = 0x8180 | rcode  # response, recursion desired and available
    head = qid + struct.pack(">HHHHH", flags, 1, len(ips), 0, 0)
    out = head + msg[12:end]
    for ip in ips:
        # A pointer to the question's name, type A, class IN, TTL 0.
        out += struct.pack(">HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(ip)
    return out


def main():
    addr, name, mode_file, ips = sys.argv[1], sys.argv[2].lower(), sys.argv[3], sys.argv[4:]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    while True:
        msg, peer = s.recvfrom(512)
        if len(msg) < 17:
            continue
        try:
            with open(mode_file) as f:
                mode = f.read().strip() or "answer"
        except OSError:
            mode = "answer"
        qname, end = question(msg)
        qtype = struct.unpack(">H", msg[end - 4:end - 2])[0]
        if mode == "silent":
            continue
        if mode == "servfail":
            s.sendto(reply(msg, 2, []), peer)
        elif qname != name or mode == "nxdomain":
            s.sendto(reply(msg, 3, []), peer)
        else:
            s.sendto(reply(msg, 0, ips if qtype == 1 else []), peer)


if __name__ == "__main__":
    main()
