"""Runs P daphne processes sharing one listening socket (the pre-fork model:
each accepts from the same fd), so Channels can use several cores.
    serve.py HOST PORT PROCESSES
Stops them all on SIGTERM/SIGINT."""
import os
import signal
import socket
import subprocess
import sys

host, port, procs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(4096)
fd = s.fileno()
os.set_inheritable(fd, True)
here = os.path.dirname(os.path.abspath(__file__))
daphne = os.path.join(os.path.dirname(sys.executable), "daphne")
env = dict(os.environ, PYTHONPATH=here)
kids = [subprocess.Popen([daphne, "--fd", str(fd), "-v", "0", "benchapp:application"],
                         pass_fds=(fd,), env=env, cwd=here) for _ in range(procs)]


def stop(*_):
    for k in kids:
        if k.poll() is None:
            k.terminate()


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
rc = 0
for k in kids:
    k.wait()
    rc = rc or k.returncode
stop()
sys.exit(0)
