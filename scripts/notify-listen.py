#!/usr/bin/env python3
"""A stand-in for systemd's notification socket (install test): binds a Unix datagram
socket any local user may write to, and appends every notification it receives to a file,
one line each (READY=1, WATCHDOG=1, STOPPING=1, ...), until killed."""
import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
if os.path.exists(path):
    os.unlink(path)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)
with open(out, "a", buffering=1) as f:
    while True:
        for line in sock.recv(4096).decode(errors="replace").splitlines():
            f.write(line + "\n")
