"""A backend service that posts on the agent side without holding a copy of the chat (an
order-status notice, say): docs/python.md, "A bot without a copy".

It keeps only the epoch it last posted under and its last acknowledged notice. It never
creates or rebuilds a chat: where the chat is missing, empty, or an incarnation that does not
hold its last notice yet, it waits (with backoff) for a participant, who holds a copy, to
rebuild it.
"""

import itertools
import time

from connection import backoff_s
from stubs import pb

OK = pb.RESULT_CODE_OK
# Matches no server's epoch (they are random UUIDs): a send carrying it is answered
# REBUILD_REQUIRED with the server's offsets and epoch, and stores and creates nothing.
PEEK_EPOCH = "no-epoch-yet"


class NotPosted(Exception):
    """No participant rebuilt the chat within the bot's wait: nothing was posted."""


class NoticeBot:
    def __init__(self, connection, bot_id, message_type=pb.MESSAGE_TYPE_BOT, wait_s=30.0, events=None):
        self.connection = connection
        self.chat_id = connection.chat_id
        self.bot_id = bot_id
        self.message_type = message_type
        self.wait_s = wait_s
        self.events = events or (lambda kind, **fields: None)
        self.epoch = ""  # the incarnation the last notice went to (or was found in)
        self.last = None  # the last notice acknowledged, as stored

    def post(self, notice_id, content):
        """Posts one notice and returns it as stored. `notice_id` is the idempotency key: derive
        it from the event ("order-4711-shipped"), so a restarted service resends the same one."""
        notice = pb.ChatMessage(id=notice_id, content=content, message_type=self.message_type)
        # Post only to the home when it is up: a notice stored on a server the participants have
        # left is held by nobody who will bring it home.
        self.connection.go_home_if_back(now=True)
        started = time.monotonic()
        for attempt in itertools.count():
            answer = self._send(notice, self.epoch or PEEK_EPOCH)
            if answer.code == OK:
                self.epoch, self.last = answer.epoch, answer.message
                return answer.message
            state = self._state(answer)  # refused: nothing was stored
            if state == "follow":
                self.epoch = answer.epoch
                continue
            if time.monotonic() - started > self.wait_s:
                if state != "lacks-last":
                    raise NotPosted("chat %s is %s on %s after %.0f s: no participant has rebuilt it"
                                    % (self.chat_id, state, self.connection.address, self.wait_s))
                self._repost_last(answer.epoch)
                continue
            self.events("waiting", state=state, epoch=answer.epoch,
                        server=[answer.visitor_data_offset, answer.agent_data_offset])
            time.sleep(backoff_s(min(attempt, 5), initial_s=0.1))

    def _send(self, notice, epoch):
        # 0/0: the bot holds nothing, so it is never ahead; the epoch is what is checked.
        return self.connection.call("AddAgentMessage", pb.AddAgentMessageRequest(
            chat_id=self.chat_id, agent_id=self.bot_id, visitor_offset=0, agent_offset=0,
            message=notice, epoch=epoch))

    def _state(self, answer):
        """Whether the bot may post into the incarnation that refused it, or must wait."""
        if answer.visitor_data_offset < 0:
            return "missing"  # a send never creates a chat; neither may the bot
        if answer.visitor_data_offset == 0 and answer.agent_data_offset == 0:
            return "empty"  # created by a read, not rebuilt yet
        if self.last is None or self._holds(answer.epoch, answer.visitor_data_offset, self.last.id):
            return "follow"
        return "lacks-last"

    def _holds(self, epoch, visitor_offset, message_id):
        """Whether incarnation `epoch` holds `message_id` on its agent side (read from 0).

        A participant that read the bot's last notice holds every earlier one too, and uploads
        them in order; so once the last is there, a new notice appended after it keeps the
        bot's order. Until then, a notice posted there could land before its predecessors.
        """
        v, a = visitor_offset, 0
        while True:
            page = self.connection.call("GetNewMessage", pb.GetNewMessageRequest(
                chat_id=self.chat_id, visitor_offset=v, agent_offset=a, epoch=epoch))
            if page.code != OK or not page.messages:
                return False
            for message in page.messages:
                if message.message_type == pb.MESSAGE_TYPE_VISITOR:
                    v = max(v, message.data_offset)
                elif message.id == message_id:
                    return True
                else:
                    a = max(a, message.data_offset)

    def _repost_last(self, epoch):
        """After the wait, the last notice is taken to be lost with a server nobody read it from:
        post it again, same id, so it exists once wherever a participant's copy brings it too."""
        answer = self._send(self.last, epoch)
        if answer.code == OK:
            self.epoch, self.last = answer.epoch, answer.message
            self.events("reposted", id=answer.message.id, offset=answer.message.data_offset)
