"""A participant's own copy of one chat: what it uploads when a server asks for a rebuild.

The same rules as the TypeScript SDK's src/client/local-copy.ts (docs/python.md, "A participant").
"""

from stubs import pb


def side_of(message):
    return "visitor" if message.message_type == pb.MESSAGE_TYPE_VISITOR else "agent"


def _clone(message, data_offset=None):
    copy = pb.ChatMessage()
    copy.CopyFrom(message)
    if data_offset is not None:
        copy.data_offset = data_offset
    return copy


def _time(message):
    return (message.send_time.seconds, message.send_time.nanos)


class LocalCopy:
    """Messages by id and by (side, offset); offsets are the contiguous prefixes held.

    The server's word on where a message sits wins. A message whose offset the server gave to
    another one is never dropped: it becomes a stray, uploaded again at the next rebuild.
    """

    def __init__(self):
        self.by_id = {}
        self.slots = {"visitor": {}, "agent": {}}
        self.strays = {}

    def offsets(self):
        """(visitor, agent): how many messages of each side are held contiguously from 1."""
        result = []
        for side in ("visitor", "agent"):
            n = 0
            while (n + 1) in self.slots[side]:
                n += 1
            result.append(n)
        return tuple(result)

    def holds(self, message_id):
        return message_id in self.by_id or message_id in self.strays

    def take(self, messages):
        """Places messages as the server placed them; returns those this copy did not hold."""
        fresh = [m for m in messages if not self.holds(m.id)]
        for message in messages:
            self._place(_clone(message))
        return fresh

    def adopt(self, view):
        """Replaces every placement with the server's complete view (after a whole upload)."""
        for message in self.by_id.values():
            self.strays[message.id] = message
        self.by_id = {}
        self.slots = {"visitor": {}, "agent": {}}
        fresh = [m for m in view if m.id not in self.strays]
        for message in view:
            self._place(_clone(message))
        return fresh

    def above(self, server):
        """An incremental upload: the placed messages above the server's offsets, then the strays."""
        limits = dict(zip(("visitor", "agent"), server))
        placed = [m for m in self.by_id.values() if m.data_offset > limits[side_of(m)]]
        last = dict(limits)
        for message in placed:
            last[side_of(message)] = max(last[side_of(message)], message.data_offset)
        return _by_offset([_clone(m) for m in placed] + self._renumbered_strays(last))

    def whole(self):
        """A whole-copy upload: each side renumbered 1..n in its order, then the strays after them.

        A copy may hold its own sends beyond a gap (messages of others it never read). Claimed
        on a server that never had the missing ones, those offsets would leave a hole nobody
        can fill, and nothing above a hole can be read. Renumbered, they extend the server's
        sides without a gap, in this copy's order.
        """
        ranked = []
        for side in ("visitor", "agent"):
            for rank, offset in enumerate(sorted(self.slots[side]), start=1):
                ranked.append(_clone(self.by_id[self.slots[side][offset]], data_offset=rank))
        last = {side: len(self.slots[side]) for side in ("visitor", "agent")}
        return _by_offset(ranked + self._renumbered_strays(last))

    def conversation(self):
        """The placed messages in conversation order: by send time, the visitor's first on a tie."""
        visitor = [self.by_id[self.slots["visitor"][o]] for o in sorted(self.slots["visitor"])]
        agent = [self.by_id[self.slots["agent"][o]] for o in sorted(self.slots["agent"])]
        out, v, a = [], 0, 0
        while v < len(visitor) or a < len(agent):
            if v < len(visitor) and (a >= len(agent) or _time(visitor[v]) <= _time(agent[a])):
                out.append(visitor[v])
                v += 1
            else:
                out.append(agent[a])
                a += 1
        return out

    def _renumbered_strays(self, last):
        """The strays in their old order, claiming the offsets right after `last` on their side."""
        following = dict(last)
        out = []
        for message in sorted(self.strays.values(), key=lambda m: m.data_offset):
            following[side_of(message)] += 1
            out.append(_clone(message, data_offset=following[side_of(message)]))
        return out

    def _place(self, message):
        side = side_of(message)
        previous = self.by_id.get(message.id)
        if previous is not None and previous.data_offset == message.data_offset and side_of(previous) == side:
            return
        if previous is not None:
            self._vacate(previous)
        occupant = self.slots[side].get(message.data_offset)
        if occupant is not None and occupant != message.id:
            displaced = self.by_id[occupant]
            self._vacate(displaced)
            self.strays[displaced.id] = displaced
        self.strays.pop(message.id, None)
        self.by_id[message.id] = message
        self.slots[side][message.data_offset] = message.id

    def _vacate(self, message):
        del self.by_id[message.id]
        slots = self.slots[side_of(message)]
        if slots.get(message.data_offset) == message.id:
            del slots[message.data_offset]


def _by_offset(messages):
    """Ordered by offset (the visitor's first on a tie), so each part extends the server's prefixes."""
    return sorted(messages, key=lambda m: (m.data_offset, side_of(m) == "agent"))
