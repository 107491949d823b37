"""Asking the kernel about a local RTSP server (Debian's rtsp-server-perl), for the RTSP tests and benches.

Asked of the kernel, never by connecting: a connection that closes while the server has no stream yet
makes rtsp-server-perl restart its RTP ports at 20000, whatever it was told, where another server may be.

Example::

    >>> listening(1, 1)   # pid 1 listens on no such port here
    False
"""
from __future__ import annotations

import psutil


def listening(pid: int, port: int) -> bool:
    """Is the process listening on TCP ``port``?"""
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                   for c in psutil.Process(pid).net_connections(kind="tcp"))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def udp_sockets(pid: int) -> int:
    """The server's RTP/RTCP sockets: two for each stream announced."""
    try:
        return len(psutil.Process(pid).net_connections(kind="udp"))
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0
