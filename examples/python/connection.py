"""Calls to one chat's servers: a channel per address, the chat's home first, retries and failover.

docs/python.md, "Connecting" and "Errors". Nothing here knows about copies or offsets.
"""

import itertools
import random
import threading
import time

import grpc

from placement import placement
from stubs import rpc

CHAT_ID_HEADER = "x-chat-id"
CALL_TIMEOUT_S = 5.0
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),  # the server lets clients ping every 10 s at most
    ("grpc.keepalive_timeout_ms", 5_000),  # an unanswered ping drops the connection, and its watch
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),  # keep pinging while a watch carries no data
    ("grpc.max_reconnect_backoff_ms", 2_000),  # notice a restarted server within 2 s
]

# Statuses that say nothing against the request itself: the same call may succeed on another
# attempt or server (README "Errors"; proxies report a dead upstream as INTERNAL or UNKNOWN).
TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


def too_large(error):
    """The server refused the request for its size (--max-request-bytes): the same request fails again."""
    return error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in (error.details() or "").lower()


def transient(error):
    return error.code() in TRANSIENT and not too_large(error)


def backoff_s(attempt, initial_s=0.05, max_s=2.0):
    """Capped exponential backoff with full jitter, as the SDK's (src/client/backoff.ts)."""
    return random.random() * min(max_s, initial_s * 2 ** attempt)


class GaveUp(Exception):
    """Every retry failed for `give_up_after_s`; the last error is the cause."""


class Connection:
    """One chat's calls, to the best-placed server that answers.

    `call` retries transient failures with backoff, moving down the placement order after each;
    while away from the home it health-checks the better-placed servers now and then and goes
    back to the best one SERVING. Listeners given to `on_move` hear of every move (a watch must
    then be opened again where the calls go). Thread-safe.
    """

    def __init__(self, chat_id, addresses, call_timeout_s=CALL_TIMEOUT_S, give_up_after_s=60.0, token=None):
        self.chat_id = chat_id
        self.order = placement(chat_id, addresses)
        self.call_timeout_s = call_timeout_s
        self.give_up_after_s = give_up_after_s
        # A secure server (any not started with --insecure) wants a bearer token (a JWT from your
        # identity service) on every call; it takes the sender id from the token's sub, never from the request.
        self.metadata = ((CHAT_ID_HEADER, chat_id),) + ((("authorization", "Bearer " + token),) if token else ())
        self._lock = threading.Lock()
        self._channels = {}
        self._current = 0
        self._probe_delay_s = 0.25
        self._next_probe = 0.0
        self._listeners = []

    @property
    def address(self):
        return self.order[self._current]

    def on_move(self, listener):
        self._listeners.append(listener)

    def stub(self, address):
        return rpc.ChatServiceStub(self._channel(address))

    def _channel(self, address):
        """One channel per address, made on first use (and again after a failure closed it)."""
        with self._lock:
            if address not in self._channels:
                self._channels[address] = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
            return self._channels[address]

    def call(self, method, request):
        """One unary call, retried until it succeeds, fails for good, or `give_up_after_s` passes."""
        give_up_at = time.monotonic() + self.give_up_after_s
        exhausted = 0
        for attempt in itertools.count():
            self.go_home_if_back()
            address = self.address
            try:
                return getattr(self.stub(address), method)(
                    request, timeout=self.call_timeout_s, wait_for_ready=True, metadata=self.metadata)
            except grpc.RpcError as error:
                if not transient(error):
                    raise
                # A full server is worth trying elsewhere; once every server said so, the limit is the chat's.
                if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    exhausted += 1
                    if exhausted >= len(self.order):
                        raise
                if time.monotonic() > give_up_at:
                    raise GaveUp("%s failed for %.0f s; last: %s %s"
                                 % (method, self.give_up_after_s, error.code().name, error.details())) from error
                self.failed(address)
                time.sleep(backoff_s(attempt))

    def watch(self, request):
        """Opens WatchChat on the current server: an iterator of responses with cancel().

        No deadline (the server ends a watch itself) and no wait_for_ready: a watch must not
        hang on a server that may never come back; the caller re-watches after a catch-up.
        """
        return self.stub(self.address).WatchChat(request, metadata=self.metadata)

    def failed(self, address):
        """Drops the channel after a failure at `address` (so the next call connects afresh) and
        moves to the next address; with one (load-balanced) address, it reconnects through it.
        A failure at an address already left changes nothing."""
        with self._lock:
            if address != self.address:
                return
            channel = self._channels.pop(address, None)
            moves = len(self.order) > 1
            if moves:
                self._current = (self._current + 1) % len(self.order)
                self._probe_delay_s = 0.25
                self._next_probe = time.monotonic() + self._probe_delay_s
        if channel is not None:
            channel.close()
        if moves:
            self._moved()

    def close(self):
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()

    def go_home_if_back(self, now=False):
        """While away from the home: health-check the better-placed servers, at most every 2 s
        (backing off from 0.25 s while they stay down), or at once when `now`."""
        with self._lock:
            if self._current == 0 or (not now and time.monotonic() < self._next_probe):
                return
            better = self.order[:self._current]
        best = next((address for address in better if self._serving(address)), None)
        with self._lock:
            if best is None:
                self._probe_delay_s = min(2.0, self._probe_delay_s * 2)
                self._next_probe = time.monotonic() + self._probe_delay_s * (0.5 + random.random() / 2)
                return
            self._current = self.order.index(best)
        self._moved()

    def _serving(self, address):
        """grpc.health.v1.Health/Check for chat.v1.ChatService, with the two messages encoded by hand.

        HealthCheckRequest is field 1 (a string); a response of b"\\x08\\x01" is status SERVING.
        """
        service = b"chat.v1.ChatService"
        try:
            answer = self._channel(address).unary_unary("/grpc.health.v1.Health/Check")(
                b"\x0a" + bytes([len(service)]) + service, timeout=1.0, metadata=self.metadata)
        except grpc.RpcError:
            self._drop(address)  # a fresh channel next time, not one waiting out its reconnect backoff
            return False
        return answer == b"\x08\x01"

    def _drop(self, address):
        with self._lock:
            channel = self._channels.pop(address, None) if address != self.address else None
        if channel is not None:
            channel.close()

    def _moved(self):
        for listener in list(self._listeners):
            listener(self.address)
