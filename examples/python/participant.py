"""A participant that keeps its own copy of a chat (a visitor, an agent): docs/python.md, "A participant".

It sends with stable ids, reads until caught up, rebuilds a server that asks, and receives by
watching or polling, with the rules of the TypeScript SDK (src/client/catch-up.ts, outbox.ts,
receiver.ts). The copy lives in memory here; a real client keeps it (messages, epoch, and the
sends not yet acknowledged) on disk, or it is only as durable as the process.
"""

import itertools
import threading
import time
import uuid

import grpc

from connection import backoff_s, too_large, transient
from local_copy import LocalCopy, side_of
from stubs import pb

OK = pb.RESULT_CODE_OK
REBUILD_REQUIRED = pb.RESULT_CODE_REBUILD_REQUIRED
MAX_UPLOAD_BYTES = 256 * 1024  # the server's default --max-request-bytes
MIN_UPLOAD_BYTES = 4 * 1024
ENVELOPE_BYTES = 1024  # room for a Rebuild request's own fields around its messages

ROLES = {"visitor": pb.MESSAGE_TYPE_VISITOR, "agent": pb.MESSAGE_TYPE_AGENT, "bot": pb.MESSAGE_TYPE_BOT}


def split_uploads(messages, max_bytes):
    """Splits an upload, in order, into parts whose encoded size stays under `max_bytes`.

    Every part after the first begins with the last message of each side sent before it. The
    server holds those by then, wherever it placed them, and a held message in an upload keeps
    the new ones after it: without them, a later part whose claimed offsets are free on the
    server would keep them, below where the server moved the messages of an earlier part.
    """
    parts, last, current, own, used = [], {}, [], 0, ENVELOPE_BYTES
    for message in messages:
        size = message.ByteSize() + 6  # the message, its tag and its length prefix
        if own > 0 and used + size > max_bytes:
            parts.append(current)
            current = [anchor for anchor, _ in last.values()]
            used = ENVELOPE_BYTES + sum(anchor_size for _, anchor_size in last.values())
            own = 0
        current.append(message)
        used += size
        own += 1
        last[side_of(message)] = (message, size)
    if own > 0:
        parts.append(current)
    return parts


class Participant:
    """One chat in one role, holding a copy. Operations on the copy run one at a time (a lock)."""

    def __init__(self, connection, role, sender_id, visitor=None, max_upload_bytes=MAX_UPLOAD_BYTES, events=None):
        self.connection = connection
        self.chat_id = connection.chat_id
        self.role = role
        self.sender_id = sender_id
        self.visitor = visitor  # a pb.Visitor, uploaded with the copy so a new server learns it
        self.begin_time = None
        self.copy = LocalCopy()
        self.epoch = ""  # the server incarnation the copy's offsets refer to; "" until a server says
        self.upload_bytes = max_upload_bytes
        self.events = events or (lambda kind, **fields: None)
        self.lock = threading.RLock()
        self.ended = False  # the chat holds an EVENT_KIND_ENDED event: sends are refused
        self.read_positions = {}  # reader id -> the id of the last message it has read
        self._positions = {}  # reader id -> its pb.ReadPosition as received (sealed): a Rebuild uploads them
        self.typing = []  # who is typing, as the last watch response said
        self._stream = None  # the watch stream open now, cancelled when it follows the wrong server
        self._rewatching = False
        connection.on_move(lambda address: self._rewatch("moved to " + address))

    def offsets(self):
        return self.copy.offsets()

    # -- sending -----------------------------------------------------------------------------

    def send(self, content, message_id=None, event=None, attachments=()):
        """Sends one message and returns it as stored. The id is made once and kept on every
        retry, so a resend after a lost answer returns the stored message instead of a second one.

        With `event` (a pb.ChatEvent) it is a lifecycle event: a MESSAGE_TYPE_SYSTEM message whose
        content may be empty. `attachments` are pb.Attachment references (at most 10). Into an
        ended chat the send raises grpc.RpcError FAILED_PRECONDITION: do not retry it."""
        message_id = message_id or "%s-%s" % (self.sender_id, uuid.uuid4())
        message_type = pb.MESSAGE_TYPE_SYSTEM if event is not None else ROLES[self.role]
        with self.lock:
            for refusals in itertools.count():
                message = pb.ChatMessage(id=message_id, content=content, message_type=message_type,
                                         attachments=list(attachments))
                if event is not None:
                    message.event.CopyFrom(event)
                answer = self._send_once(message)
                fresh = self._take([answer.message], answer.epoch) if answer.code == OK else None
                if fresh is not None:
                    self._announce(fresh)
                    return answer.message
                self._pause(refusals)
                self.catch_up()  # rebuilds the server if it asks; then the same id again

    def _send_once(self, message):
        v, a = self.offsets()
        if self.role == "visitor":
            message.sender_id = self.sender_id
            return self.connection.call("AddVisitorMessage", pb.AddVisitorMessageRequest(
                chat_id=self.chat_id, visitor_offset=v, agent_offset=a, message=message, epoch=self.epoch))
        return self.connection.call("AddAgentMessage", pb.AddAgentMessageRequest(
            chat_id=self.chat_id, agent_id=self.sender_id, visitor_offset=v, agent_offset=a,
            message=message, epoch=self.epoch))

    # -- reading and rebuilding ----------------------------------------------------------------

    def catch_up(self):
        """Reads page by page until level with the server, rebuilding it whenever it asks."""
        with self.lock:
            fresh, strays_sent, refusals = [], False, 0
            while True:
                v, a = self.offsets()
                read = self.connection.call("GetNewMessage", pb.GetNewMessageRequest(
                    chat_id=self.chat_id, visitor_offset=v, agent_offset=a, epoch=self.epoch))
                if read.code == REBUILD_REQUIRED:
                    self._pause(refusals)
                    refusals += 1
                    fresh += self._rebuild((read.visitor_data_offset, read.agent_data_offset), read.epoch)
                    continue
                taken = self._take(read.messages, read.epoch)
                if taken is None:  # another incarnation answered: its offsets are not ours
                    self._pause(refusals)
                    refusals += 1
                    continue
                fresh += taken
                self._note_state(read)
                v, a = self.offsets()
                if read.messages and (v < read.visitor_data_offset or a < read.agent_data_offset):
                    continue  # more pages
                if not self.copy.strays or strays_sent:
                    break
                strays_sent = True  # a message of ours lost its offset to another: have it placed anew
                fresh += self._rebuild((read.visitor_data_offset, read.agent_data_offset), read.epoch)
            self._announce(fresh)
            return fresh

    def _rebuild(self, server, server_epoch):
        """Uploads what the server lacks, then takes the server's placement.

        Same epoch: the server's history is ours, only shorter: upload what lies above its
        offsets (incremental). Another epoch, or none (-1/-1: it had no such chat): the histories
        may differ anywhere: upload the whole copy, renumbered, then adopt the server's order.
        """
        whole = server[0] < 0 or server_epoch != self.epoch
        going = self.copy.whole() if whole else self.copy.above(server)
        base = "" if whole else server_epoch  # the incarnation the upload extends; "" merges anywhere
        while True:
            try:
                answer = self._upload(going, base)
                break
            except grpc.RpcError as error:  # a server with a smaller request limit: again, in halves
                if not too_large(error) or self.upload_bytes <= MIN_UPLOAD_BYTES:
                    raise
                self.upload_bytes = max(MIN_UPLOAD_BYTES, self.upload_bytes // 2)
                self.events("upload-halved", upload_bytes=self.upload_bytes, details=error.details())
        if answer is None:
            return []  # another incarnation refused a part: the next read says what to do
        chat, complete, parts = answer
        if whole:
            view = list(chat.messages) if complete else self._read_all(chat.epoch)
            if view is None:
                return []  # that incarnation is gone already
            fresh = self.copy.adopt(view)
            self._follow(chat.epoch)
        else:
            self._follow(chat.epoch)
            fresh = (self._take(chat.messages, chat.epoch) or []) if complete else []
        reason = "missing" if server[0] < 0 else "diverged" if whole else "behind"
        self.events("rebuild", address=self.connection.address, reason=reason, uploaded=len(going), parts=parts,
                    complete=complete, server_before=list(server))
        return fresh

    def _upload(self, going, base):
        """Rebuilds in parts under the upload size: the first extends `base`, each later part the
        incarnation that took the first. Returns (chat, complete, parts), or None when refused."""
        parts = split_uploads(going, self.upload_bytes) or [[]]
        for number, messages in enumerate(parts, 1):
            v, a = self.offsets()
            chat = pb.Chat(id=self.chat_id, visitor_data_offset=v, agent_data_offset=a, messages=messages, epoch=base)
            if number == len(parts):  # read positions go last: each must name a message held or uploaded
                chat.read_positions.extend(p for p in self._positions.values() if self.copy.holds(p.message_id))
            if self.visitor is not None:
                chat.visitor.CopyFrom(self.visitor)
            if self.begin_time is not None:
                chat.begin_time.CopyFrom(self.begin_time)
            answer = self.connection.call("Rebuild", pb.RebuildRequest(chat=chat))
            if answer.code == REBUILD_REQUIRED:
                return None
            if self.visitor is None and answer.chat.HasField("visitor"):
                self.visitor = answer.chat.visitor
            if self.begin_time is None and answer.chat.HasField("begin_time"):
                self.begin_time = answer.chat.begin_time
            base = answer.chat.epoch
        return answer.chat, not answer.truncated, len(parts)

    def _read_all(self, epoch):
        """The whole chat as incarnation `epoch` holds it, page by page from 0/0; None if it is gone."""
        messages, v, a = [], 0, 0
        while True:
            page = self.connection.call("GetNewMessage", pb.GetNewMessageRequest(
                chat_id=self.chat_id, visitor_offset=v, agent_offset=a, epoch=epoch))
            if page.code == REBUILD_REQUIRED:
                return None
            if not page.messages:
                return messages
            messages += page.messages
            v = max([v] + [m.data_offset for m in page.messages if side_of(m) == "visitor"])
            a = max([a] + [m.data_offset for m in page.messages if side_of(m) == "agent"])

    def _take(self, messages, epoch):
        """The one gate for placements: only an answer of the copy's own incarnation is placed
        (a copy without an epoch takes the first). Returns the new messages, or None."""
        if self.epoch and epoch != self.epoch:
            return None
        self._follow(epoch)
        return self.copy.take(messages)

    def _follow(self, epoch):
        if epoch and epoch != self.epoch:
            changed = bool(self.epoch)
            self.epoch = epoch
            if changed:
                self._rewatch("adopted epoch " + epoch)

    def _pause(self, refusals):
        """Backs off after repeated refusals (servers flapping), never before the first."""
        if refusals > 0:
            time.sleep(backoff_s(refusals - 1))

    def _note_state(self, answer, typing=False):
        """Keeps what a read or a watch response says besides messages: whether the chat has
        ended, everyone's read position, and (watch responses only; never stored) who is typing.
        A watch pushes a message-less response when only these change."""
        self._keep_positions(answer.read_positions)
        state = {"ended": answer.ended,
                 "read_positions": {p.reader_id: p.message_id for p in answer.read_positions}}
        if typing:
            state["typing"] = sorted(t.participant_id for t in answer.typing)
        changed = {k: v for k, v in state.items() if getattr(self, k, None) != v}
        for key, value in changed.items():
            setattr(self, key, value)
        if changed:
            self.events("state", **changed)

    # -- read positions and typing -------------------------------------------------------------

    def mark_read(self, message_id):
        """Says this participant has read the chat up to `message_id` (one its copy holds).
        Returns everyone's read positions; a position only moves forward. REBUILD_REQUIRED (the
        chat is missing or another incarnation) is answered as elsewhere: catch up, then again."""
        with self.lock:
            for refusals in itertools.count():
                answer = self.connection.call("MarkRead", pb.MarkReadRequest(
                    chat_id=self.chat_id, reader_id=self.sender_id, message_id=message_id, epoch=self.epoch))
                if answer.code == OK:
                    self._keep_positions(answer.read_positions)
                    self.read_positions = {p.reader_id: p.message_id for p in answer.read_positions}
                    return self.read_positions
                self._pause(refusals)
                self.catch_up()

    def _keep_positions(self, positions):
        """Keeps the read positions as received, seal and all, for the next Rebuild."""
        self._positions = {p.reader_id: p for p in positions}

    def set_typing(self, typing=True):
        """Tells the chat's watchers this participant is typing (or stopped). The indication
        lapses after the server's --typing-ttl-ms (5 s) unless renewed, and when it sends; so
        renew it every few seconds while the user types. Returns when it lapses (or None)."""
        answer = self.connection.call("SetTyping", pb.SetTypingRequest(
            chat_id=self.chat_id, participant_id=self.sender_id, typing=typing))
        return answer.expire_time if answer.HasField("expire_time") else None

    def _announce(self, fresh):
        for message in fresh:
            self.events("message", message=message)

    # -- receiving ---------------------------------------------------------------------------

    def poll(self, stop, interval_s=1.0):
        """Receives by polling until `stop` (a threading.Event) is set."""
        while not stop.wait(interval_s):
            try:
                self.catch_up()
            except Exception as error:  # noqa: BLE001 (reported; polling goes on)
                self.events("failure", error=repr(error))

    def watch(self, stop):
        """Receives by watching until `stop` is set: a catch-up, then a WatchChat stream from the
        copy's position, again whenever the stream ends, breaks or follows the wrong server."""
        keeper = threading.Thread(target=self._keep_home, args=(stop,), daemon=True)
        keeper.start()
        breaks = 0
        while not stop.is_set():
            outcome = self._watch_once(stop)
            breaks = 0 if outcome in ("answered", "rehome") else breaks + 1
            if breaks:
                stop.wait(backoff_s(breaks))
        keeper.join()

    def _keep_home(self, stop, interval_s=0.25):
        """While watching, look for the chat's home now and then even when no call is made: a
        move ends the stream (see __init__), and the loop watches again where calls go now."""
        while not stop.wait(interval_s):
            self.connection.go_home_if_back()
        self._rewatch("stopped")

    def _watch_once(self, stop):
        address = None
        try:
            with self.lock:
                self.catch_up()
                address = self.connection.address
                v, a = self.offsets()
                stream = self._stream = self.connection.watch(pb.WatchChatRequest(
                    chat_id=self.chat_id, visitor_offset=v, agent_offset=a, epoch=self.epoch))
            answered = False
            for response in stream:
                answered = True
                if response.code == REBUILD_REQUIRED:
                    return "answered"  # the last response: catch up (and rebuild), then watch again
                with self.lock:
                    fresh = self._take(response.messages, response.epoch)
                    if fresh is None:
                        return "rehome"  # pushed by another incarnation than the copy's
                    self._announce(fresh)
                    self._note_state(response, typing=True)
            self.events("watch-ended", address=address, status="OK")
            return "answered" if answered else "silent"
        except grpc.RpcError as error:
            if stop.is_set() or (error.code() == grpc.StatusCode.CANCELLED and self._rewatching):
                return "rehome"
            self.events("watch-ended", address=address, status=error.code().name)
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                return "broken"  # cut off as a slow reader, or too many watchers: watch again from our offsets
            if transient(error) and address is not None:
                self.connection.failed(address)  # the server died, or a proxy broke the stream
            return "broken"
        except Exception as error:  # noqa: BLE001 (a catch-up that gave up: reported, then again)
            self.events("failure", error=repr(error))
            return "broken"
        finally:
            with self.lock:
                self._stream, self._rewatching = None, False

    def _rewatch(self, why):
        """Ends the open watch (if any), so the loop opens it again where the calls go now."""
        stream = self._stream
        if stream is not None:
            self._rewatching = True
            stream.cancel()
