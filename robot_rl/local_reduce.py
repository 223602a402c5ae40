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
        self._buffers: dict[tuple[int, torch.dtype], torch.Tensor] = {}
        server = socket.create_server(("127.0.0.1", 0))
        server.settimeout(timeout.total_seconds())
        store.set(_KEY.format(rank), str(server.getsockname()[1]))
        self.peers: dict[int, socket.socket] = {}
        try:
            for r in range(rank):  # connect to the lower ranks, accept the higher ones
                port = int(store.get(_KEY.format(r)).decode())
                conn = socket.create_connection(("127.0.0.1", port), timeout=timeout.total_seconds())
                conn.sendall(struct.pack("<i", rank))
                self.peers[r] = conn
            for _ in range(rank + 1, world):
                conn, _ = server.accept()
                conn.settimeout(timeout.total_seconds())
                (r,) = struct.unpack("<i", _recv_exact(conn, 4))
                self.peers[r] = conn
        finally:
            server.close()
        for conn in self.peers.values():
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setblocking(False)
        self._selector = selectors.DefaultSelector()

    def sum_(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (contiguous, CPU) replaced in place by its sum over the ranks, added in rank order."""
        if x.device.type != "cpu" or not x.is_contiguous():
            raise ValueError("LocalReducer.sum_ takes a contiguous CPU tensor")
        n = x.numel()
        key = (n, x.dtype)
        if key not in self._buffers:
            self._buffers[key] = torch.empty((self.world, n), dtype=x.dtype)
        recv = self._buffers[key]
        self._exchange(_bytes(x), {r: _bytes(recv[r]) for r in self.peers})
        recv[self.rank].copy_(x)
        x.copy_(recv[0])
        for r in range(1, self.world):
            x.add_(recv[r])
        return x

    def _exchange(self, out: memoryview, into: dict[int, memoryview]) -> None:
        """Send ``out`` to every peer while receiving each peer's bytes into ``into[peer]`` (interleaved, so that
        tensors larger than the socket buffers cannot deadlock two ranks that both send first)."""
        sel, total = self._selector, len(out)
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

    def close(self) -> None:
        """Close the connections."""
        self._selector.close()
        for conn in self.peers.values():
            conn.close()
        self.peers = {}


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
