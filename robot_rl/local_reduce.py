"""Sum of CPU tensors over the ranks of one machine through direct loopback sockets (the gradient all-reduce of
a single-node CPU group).

Why not gloo's ``all_reduce`` there: profiled on 2 ranks of a 2-core machine (``benchmarks/ddp_profile.py``), a
gloo all-reduce of PPO's 28k-float gradient passes through gloo's worker thread and its socket thread on each
rank, and every one of those wake-ups waits for a core: 0.5 ms median and 2.6 ms mean per collective under load
against 0.03 and 0.2 ms for a plain exchange on a socket read by the waiting thread itself (one wake-up), and the
update makes one such collective per minibatch. Every rank sends its tensor to every other rank and adds the
ones it receives in rank order, so all ranks compute the same floating-point sum bit for bit. Traffic grows with
the number of ranks (each sends its tensor ``world - 1`` times), which suits the few ranks of one machine; a
multi-node group keeps gloo.
"""

from __future__ import annotations

import selectors
import socket
import struct
from datetime import timedelta

import torch

_KEY = "robot_rl/local_reduce/port/{}"


class LocalReducer:
    """A full mesh of loopback TCP connections between the ranks of one machine, set up through the process
    group's store (every rank must construct it, in the same order as its other collectives)."""

    def __init__(self, rank: int, world: int, store, timeout: timedelta) -> None:
        self.rank, self.world, self.timeout = rank, world, timeout.total_seconds()
        self._buffers: dict[tuple[int, torch.dtype], tuple[torch.Tensor, dict[int, memoryview]]] = {}
        server = _socket()
        server.bind(("127.0.0.1", 0))
        server.listen(world)
        server.settimeout(self.timeout)
        store.set(_KEY.format(rank), str(server.getsockname()[1]))
        self.peers: dict[int, socket.socket] = {}
        try:
            for r in range(rank):  # connect to the lower ranks, accept the higher ones
                port = int(store.get(_KEY.format(r)).decode())
                conn = _socket()
                conn.settimeout(self.timeout)
                conn.connect(("127.0.0.1", port))
                conn.sendall(struct.pack("<i", rank))
                self.peers[r] = conn
            for _ in range(rank + 1, world):
                conn, _ = server.accept()
                conn.settimeout(self.timeout)
                (r,) = struct.unpack("<i", _recv_exact(conn, 4))
                self.peers[r] = conn
        finally:
            server.close()
        for conn in self.peers.values():
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # a tensor this small is taken whole by the kernel (the peer's receive queue is empty between sums), so
        # every rank can send to all, then read from all, blocking: no selector, one wake-up
        self._whole = min(min(c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                              c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)) for c in self.peers.values()) // 4
        self._selector = selectors.DefaultSelector()

    def sum_(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (contiguous, CPU) replaced in place by its sum over the ranks, added in rank order."""
        if x.device.type != "cpu" or not x.is_contiguous():
            raise ValueError("LocalReducer.sum_ takes a contiguous CPU tensor")
        key = (x.numel(), x.dtype)
        if key not in self._buffers:
            recv = torch.empty((self.world, x.numel()), dtype=x.dtype)
            self._buffers[key] = (recv, {r: _bytes(recv[r]) for r in self.peers})
        recv, into = self._buffers[key]
        out = _bytes(x)
        if len(out) <= self._whole:
            for conn in self.peers.values():
                conn.sendall(out)
            for r, conn in self.peers.items():
                _recv_into(conn, into[r], r, self.rank)
        else:
            self._exchange(out, into)
        if self.world == 2:  # a + b == b + a bit for bit: both ranks hold the same sum
            return x.add_(recv[1 - self.rank])
        recv[self.rank].copy_(x)
        x.copy_(recv[0])
        for r in range(1, self.world):
            x.add_(recv[r])
        return x

    def _exchange(self, out: memoryview, into: dict[int, memoryview]) -> None:
        """Send ``out`` to every peer while receiving each peer's bytes into ``into[peer]`` (interleaved, so that
        tensors larger than the socket buffers cannot deadlock two ranks that both send first)."""
        sel, total = self._selector, len(out)
        for conn in self.peers.values():
            conn.setblocking(False)
        sent = dict.fromkeys(self.peers, 0)
        got = dict.fromkeys(self.peers, 0)
        for r, conn in self.peers.items():
            sel.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE, r)
        try:
            pending = len(self.peers)
            while pending:
                events = sel.select(timeout=self.timeout)
                if not events:
                    raise TimeoutError(f"rank {self.rank}: no progress exchanging with the other ranks for "
                                       f"{self.timeout:.0f} s")
                for key, mask in events:
                    r, conn = key.data, key.fileobj
                    if mask & selectors.EVENT_WRITE and sent[r] < total:
                        sent[r] += conn.send(out[sent[r]:])
                    if mask & selectors.EVENT_READ and got[r] < total:
                        k = conn.recv_into(into[r][got[r]:])
                        if k == 0:
                            raise RuntimeError(f"rank {self.rank}: rank {r} closed its connection mid-reduction")
                        got[r] += k
                    if sent[r] == total and got[r] == total:
                        sel.unregister(conn)
                        pending -= 1
                    elif sent[r] == total:
                        sel.modify(conn, selectors.EVENT_READ, r)
        finally:
            for conn in self.peers.values():
                if conn in sel.get_map():
                    sel.unregister(conn)
                conn.settimeout(self.timeout)

    def close(self) -> None:
        """Close the connections."""
        self._selector.close()
        for conn in self.peers.values():
            conn.close()
        self.peers = {}


_BUFFER = 4 << 20  # asked for before connecting (the receive window scales with it); the kernel may cap it


def _socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
    return s


def _recv_into(conn: socket.socket, buf: memoryview, peer: int, rank: int) -> None:
    got = 0
    while got < len(buf):
        k = conn.recv_into(buf[got:])
        if k == 0:
            raise RuntimeError(f"rank {rank}: rank {peer} closed its connection mid-reduction")
        got += k


def _bytes(t: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, shared with it (any dtype)."""
    return memoryview(t.detach().reshape(-1).view(torch.uint8).numpy())


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise RuntimeError("a rank closed its connection while the group was being set up")
        data += chunk
    return data
