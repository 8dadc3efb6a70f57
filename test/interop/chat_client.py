#!/usr/bin/env python3
"""A chat client in another language, built only from proto/chat/v1/chat.proto.

Usage: python3 test/interop/chat_client.py ADDR_A ADDR_B

Compiles proto/chat/v1/chat.proto (and nothing else of this repository) with
`python3 -m grpc_tools.protoc` into a temporary directory, imports the generated modules and
runs the original flows of the chat rebuild protocol, checking every answer against
docs/reference.md sections 2 and 3:

  phase A (ADDR_A): bad input, sends to a missing chat, new chat, rebuild, visitor and agent
  sends, resends, reads from the caller's offsets, callers ahead of the server, rebuild of a
  chat from client copies (incremental too); then, on a chat of its own, the support
  conversation: attachments (and each field's refusal), lifecycle events, typing and read
  positions pushed to a watch without messages, MarkRead's NOT_FOUND and REBUILD_REQUIRED,
  the end (sends and SetTyping refused with FAILED_PRECONDITION) and its transcript,
  offered by WatchTranscripts and not again once acknowledged;

  failover: prints READY_FOR_FAILOVER, waits for one line on stdin (the controller kills A);

  phase B (ADDR_B only): B answers rebuild-required (-1/-1) to the agent and the visitor, both
  rebuild from their local copies, they keep talking, and at the end the visitor's copy, the
  agent's copy and B's view are identical.

With CHAT_TEST_KEYS set (the test's keys, as JSON: the HS256 secret, the seal key id and the
base64 seal key), the servers are secure and the client plays every party a request names:
each call carries a bearer token for whoever the request says sends it, and a Rebuild's
hand-built messages carry the seal the server would have given them (TestKeys below).

Prints a trace of each step on stdout and exits 0 only if every expectation held; otherwise it
prints FAIL: <what was expected and what came back> on stderr and exits 1 (2 for a setup
problem). Needs Debian's python3-grpcio and python3-grpc-tools (`apt-get install -y
python3-grpcio python3-grpc-tools`); run it with the python that has them (/usr/bin/python3).
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_ROOT = os.path.join(REPO, "proto")
PROTO_FILE = os.path.join("chat", "v1", "chat.proto")
CALL_TIMEOUT_S = 10
CONNECT_TIMEOUT_S = 10
MAX_PAGES = 1000

# docs/reference.md section 2: result codes and the offsets of a missing chat.
OK = 0
REBUILD_REQUIRED = 1
MISSING = (-1, -1)


class Failure(Exception):
    """An answer that docs/reference.md sections 2-3 contradict."""


def trace(text):
    print(text, flush=True)


def expect(condition, what):
    if not condition:
        raise Failure(what)


def expect_equal(got, want, what):
    if got != want:
        raise Failure("%s: expected %r, got %r" % (what, want, got))


# --- generated code -----------------------------------------------------------------------------


def generate(out_dir):
    """Runs grpc_tools' protoc on chat.proto only.

    The well-known google/protobuf/timestamp.proto comes from the _proto directory that
    grpc_tools ships (its own __main__ adds it too; it is passed explicitly so the include does
    not depend on that). Only chat_pb2.py and chat_pb2_grpc.py are generated: the Timestamp
    module is the protobuf runtime's own google.protobuf.timestamp_pb2.
    """
    import grpc_tools

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    command = [
        sys.executable, "-m", "grpc_tools.protoc",
        "-I" + PROTO_ROOT, "-I" + well_known,
        "--python_out=" + out_dir, "--grpc_python_out=" + out_dir,
        PROTO_FILE,
    ]
    result = subprocess.run(command, cwd=PROTO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    if result.returncode != 0:
        sys.stderr.write("protoc failed (%d): %s\n%s" % (result.returncode, " ".join(command), result.stderr))
        sys.exit(2)
    return command


def load_generated():
    """Generates and imports chat_pb2 / chat_pb2_grpc; returns (pb, rpc, temp dir, command).

    Why this works with Debian's old grpc_tools: python3-grpc-tools 1.14 bundles protoc 3.5.1,
    whose _pb2.py builds every descriptor by calling _descriptor.FileDescriptor(...),
    Descriptor(...), FieldDescriptor(...) directly. Debian 12's python3-protobuf (3.21.12,
    reported as 4.21.12) runs the C++ implementation by default, which still accepts those
    calls when they come from module level of a *_pb2.py file, so the generated code imports
    and works unchanged (the installed python3-grpcio 1.51 is happy with the old
    chat_pb2_grpc.py too). Newer runtimes (the upb implementation of protobuf >= 4.21 wheels)
    refuse them with "TypeError: Descriptors cannot be created directly"; for that case, and
    only then, this script re-executes itself with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python
    (the pure-Python runtime, which still supports such code, with a DeprecationWarning that
    Python hides by default). The implementation in use is printed in the trace.
    """
    temp = tempfile.TemporaryDirectory(prefix="chat-interop-")
    command = generate(temp.name)
    sys.path.insert(0, temp.name)
    try:
        from chat.v1 import chat_pb2, chat_pb2_grpc
    except TypeError as error:
        already_python = os.environ.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION") == "python"
        if "Descriptors cannot" not in str(error) or already_python:
            raise
        sys.stdout.flush()
        sys.stderr.write("protobuf runtime rejects protoc 3.5 output (%s); re-running with the "
                         "pure-Python implementation\n" % error)
        env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
        temp.cleanup()
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    return chat_pb2, chat_pb2_grpc, temp, command


# --- a client's local copy ----------------------------------------------------------------------


def side_of(pb, message_type):
    return "visitor" if message_type == pb.MESSAGE_TYPE_VISITOR else "agent"


def key(message):
    """Everything that makes two copies of a message the same message."""
    return (message.id, message.data_offset, message.message_type, message.content, message.sender_id,
            message.send_time.seconds, message.send_time.nanos)


def show(messages):
    return "[" + ", ".join("%s@%d" % (m.id, m.data_offset) for m in messages) + "]"


def conversation(pb, messages):
    """Orders messages as a conversation: each side in offset order, the two sides interleaved
    by the server-stamped send_time, the visitor's first on a tie.

    docs/reference.md says "in conversation order" without defining it; this is the rule the server
    documents (src/domain/conversation.ts). A client displays its copy in this order, so the
    final comparison of "same order" means: B's view is exactly this order of the same messages.
    """
    sides = {"visitor": [], "agent": []}
    for message in messages:
        sides[side_of(pb, message.message_type)].append(message)
    visitor = sorted(sides["visitor"], key=lambda m: m.data_offset)
    agent = sorted(sides["agent"], key=lambda m: m.data_offset)
    out, v, a = [], 0, 0
    while v < len(visitor) or a < len(agent):
        take_visitor = v < len(visitor) and (
            a >= len(agent)
            or (visitor[v].send_time.seconds, visitor[v].send_time.nanos)
            <= (agent[a].send_time.seconds, agent[a].send_time.nanos))
        if take_visitor:
            out.append(visitor[v])
            v += 1
        else:
            out.append(agent[a])
            a += 1
    return out


class LocalCopy:
    """A client's own copy of one chat, updated from responses exactly as a client would."""

    def __init__(self, pb, role, chat_id):
        self.pb = pb
        self.role = role
        self.chat_id = chat_id
        self.by_side = {"visitor": {}, "agent": {}}

    def offsets(self):
        """The contiguous prefix held on each side (docs/reference.md section 2)."""
        result = []
        for side in ("visitor", "agent"):
            held, n = self.by_side[side], 0
            while (n + 1) in held:
                n += 1
            result.append(n)
        return tuple(result)

    def messages(self):
        return conversation(self.pb, [m for side in self.by_side.values() for m in side.values()])

    def ids(self):
        return {m.id for m in self.messages()}

    def absorb(self, message):
        """Stores a message the server returned (send answer or read)."""
        side = self.by_side[side_of(self.pb, message.message_type)]
        existing = side.get(message.data_offset)
        if existing is not None and key(existing) != key(message):
            raise Failure("%s copy: server gave %s offset %d, which already holds %s"
                          % (self.role, message.id, message.data_offset, existing.id))
        for other in self.messages():
            if other.id == message.id and key(other) != key(message):
                raise Failure("%s copy: server returned %s again with different fields: %r vs %r"
                              % (self.role, message.id, key(message), key(other)))
        copy = self.pb.ChatMessage()
        copy.CopyFrom(message)
        side[message.data_offset] = copy

    def adopt(self, chat):
        """Takes the server's chat after a rebuild, checking it kept everything this copy held."""
        held = self.ids()
        got = {m.id for m in chat.messages}
        lost = held - got
        if lost:
            raise Failure("%s copy: the rebuilt chat lost %s" % (self.role, sorted(lost)))
        self.by_side = {"visitor": {}, "agent": {}}
        for message in chat.messages:
            self.absorb(message)

    def to_chat(self, visitor=None, only_above=None):
        """The upload for Rebuild: the whole copy, or only what lies above `only_above`."""
        v, a = self.offsets()
        chat = self.pb.Chat(id=self.chat_id, visitor_data_offset=v, agent_data_offset=a)
        if visitor is not None:
            chat.visitor.CopyFrom(visitor)
        for message in self.messages():
            if only_above is not None:
                limit = only_above[0] if side_of(self.pb, message.message_type) == "visitor" else only_above[1]
                if message.data_offset <= limit:
                    continue
            chat.messages.add().CopyFrom(message)
        return chat


# --- secure servers -----------------------------------------------------------------------------


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TestKeys:
    """What a secure test server expects of the parties a request names, made with its keys."""

    def __init__(self, pb, spec):
        self.pb = pb
        self.secret = spec["secret"].encode("utf-8")
        self.seal_key_id = spec["sealKeyId"]
        self.seal_key = base64.b64decode(spec["sealKey"])

    def token(self, claims):
        """An HS256 JWT for `claims`, valid for ten minutes."""
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64url(json.dumps(dict(claims, exp=int(time.time()) + 600)).encode())
        signature = hmac.new(self.secret, ("%s.%s" % (header, payload)).encode(), hashlib.sha256).digest()
        return "%s.%s.%s" % (header, payload, b64url(signature))

    def claims(self, method, request):
        """Who `request` says sends it: a visitor message's sender, an agent message's agent, else a service."""
        pb = self.pb
        if method == "AddVisitorMessage":
            return {"sub": request.message.sender_id or "visitor", "role": "visitor", "chat_id": request.chat_id or "none"}
        if method == "AddAgentMessage":
            service = request.message.message_type in (pb.MESSAGE_TYPE_BOT, pb.MESSAGE_TYPE_SYSTEM)
            return {"sub": request.agent_id or ("service" if service else "agent"), "role": "service" if service else "agent"}
        if method == "MarkRead":
            return {"sub": request.reader_id or "agent", "role": "agent"}
        if method == "SetTyping":
            return {"sub": request.participant_id or "agent", "role": "agent"}
        return {"sub": "service", "role": "service"}

    def seal(self, chat_id, message):
        """The seal of docs/protocol.md: HMAC-SHA256 over the length-prefixed chat id, id, type, sender, content and send time (ms)."""
        millis = message.send_time.seconds * 1000 + message.send_time.nanos // 1000000
        fields = [chat_id, message.id, str(message.message_type), message.sender_id, message.content, str(millis)]
        data = b"".join(struct.pack(">I", len(f.encode("utf-8"))) + f.encode("utf-8") for f in fields)
        return "%s.%s" % (self.seal_key_id, b64url(hmac.new(self.seal_key, data, hashlib.sha256).digest()))

    def prepared(self, method, request):
        """The request as sent, and its metadata: a token, and for a Rebuild seals on its unsealed messages."""
        if method == "Rebuild" and request.HasField("chat"):
            sealed = self.pb.RebuildRequest()
            sealed.CopyFrom(request)
            for message in sealed.chat.messages:
                if message.HasField("seal"):
                    continue
                if not message.HasField("send_time"):
                    message.send_time.GetCurrentTime()
                message.seal.value = self.seal(sealed.chat.id, message)
            request = sealed
        return request, [("authorization", "Bearer " + self.token(self.claims(method, request)))]


# --- the flows ----------------------------------------------------------------------------------


class Flows:
    def __init__(self, grpc, pb, rpc, addr_a, addr_b):
        self.grpc = grpc
        self.pb = pb
        self.rpc = rpc
        self.addr_a = addr_a
        self.addr_b = addr_b
        self.chat_id = "py-interop-" + uuid.uuid4().hex[:12]
        self.visitor_info = pb.Visitor(id="visitor-py", name="Py Visitor", email="visitor@example.test")
        self.agent_id = "agent-py"
        self.bot_id = "bot-py"
        self.visitor = LocalCopy(pb, "visitor", self.chat_id)
        self.agent = LocalCopy(pb, "agent", self.chat_id)
        self.sent = {}  # id -> the message as first stored, to check resends
        spec = os.environ.get("CHAT_TEST_KEYS")
        self.keys = TestKeys(pb, json.loads(spec)) if spec else None

    # -- plumbing

    def connect(self, address):
        channel = self.grpc.insecure_channel(address)
        try:
            self.grpc.channel_ready_future(channel).result(timeout=CONNECT_TIMEOUT_S)
        except self.grpc.FutureTimeoutError:
            raise Failure("could not connect to %s within %ds" % (address, CONNECT_TIMEOUT_S))
        return channel, self.rpc.ChatServiceStub(channel)

    def invoke(self, stub, method, request):
        """One call, as the server's keys (if any) want it."""
        if self.keys is None:
            return getattr(stub, method)(request, timeout=CALL_TIMEOUT_S)
        request, metadata = self.keys.prepared(method, request)
        return getattr(stub, method)(request, timeout=CALL_TIMEOUT_S, metadata=metadata)

    def call(self, stub, method, request):
        try:
            return self.invoke(stub, method, request)
        except self.grpc.RpcError as error:
            raise Failure("%s failed: %s %s" % (method, error.code(), error.details()))

    def expect_status(self, stub, method, request, code, what):
        try:
            response = self.invoke(stub, method, request)
        except self.grpc.RpcError as error:
            expect_equal(error.code(), code, what + " (status; details: %s)" % error.details())
            trace("  %s -> %s: %s" % (what, error.code().name, error.details()))
            return
        raise Failure("%s: expected status %s, got a response: %s" % (what, code, response))

    def new_message(self, prefix, message_type, content, sender_id):
        return self.pb.ChatMessage(id="%s-%s" % (prefix, uuid.uuid4().hex[:8]), content=content,
                                   message_type=message_type, sender_id=sender_id)

    def expect_answer(self, response, code, offsets, what):
        expect_equal(response.code, code, what + ": code")
        expect_equal((response.visitor_data_offset, response.agent_data_offset), offsets, what + ": offsets")

    # -- the four RPCs as a client uses them

    def send_visitor(self, stub, message, caller=None):
        caller = self.visitor.offsets() if caller is None else caller
        return self.call(stub, "AddVisitorMessage", self.pb.AddVisitorMessageRequest(
            chat_id=self.chat_id, visitor_offset=caller[0], agent_offset=caller[1], message=message))

    def send_agent(self, stub, message, caller=None, agent_id=None):
        caller = self.agent.offsets() if caller is None else caller
        return self.call(stub, "AddAgentMessage", self.pb.AddAgentMessageRequest(
            chat_id=self.chat_id, agent_id=agent_id or self.agent_id, visitor_offset=caller[0],
            agent_offset=caller[1], message=message))

    def read(self, stub, caller, chat_id=None):
        return self.call(stub, "GetNewMessage", self.pb.GetNewMessageRequest(
            chat_id=chat_id or self.chat_id, visitor_offset=caller[0], agent_offset=caller[1]))

    def rebuild(self, stub, chat):
        return self.call(stub, "Rebuild", self.pb.RebuildRequest(chat=chat))

    def expect_stored(self, response, message, offset, offsets, what):
        """A successful send: code 0, the message as stored at `offset` of its side."""
        self.expect_answer(response, OK, offsets, what)
        expect(response.HasField("message"), what + ": the stored message is missing")
        stored = response.message
        expect_equal(stored.id, message.id, what + ": id")
        expect_equal(stored.data_offset, offset, what + ": data_offset")
        expect_equal(stored.message_type, message.message_type, what + ": message_type")
        expect_equal(stored.content, message.content, what + ": content")
        expect_equal(stored.sender_id, message.sender_id, what + ": sender_id")
        expect(stored.HasField("send_time") and stored.send_time.seconds > 0, what + ": send_time not stamped")
        self.sent[stored.id] = stored
        trace("  %s -> code 0, %s at offset %d, server %d/%d"
              % (what, stored.id, stored.data_offset, response.visitor_data_offset, response.agent_data_offset))
        return stored

    def expect_rejected_send(self, response, offsets, what):
        """A refused send: code 1, the given offsets, no message."""
        self.expect_answer(response, REBUILD_REQUIRED, offsets, what)
        expect(not response.HasField("message"), what + ": a message came back although nothing may be stored")
        trace("  %s -> code 1, %d/%d, no message" % (what, offsets[0], offsets[1]))

    def expect_read(self, response, code, offsets, messages, what):
        """A read answer: code, server offsets and exactly these messages in this order."""
        self.expect_answer(response, code, offsets, what)
        expect_equal(show(response.messages), show(messages), what + ": messages")
        for got, want in zip(response.messages, messages):
            expect_equal(key(got), key(want), what + ": message " + want.id)
        trace("  %s -> code %d, %d/%d, %s" % (what, code, offsets[0], offsets[1], show(response.messages)))

    def expect_chat(self, response, chat_id, offsets, messages, what):
        """A Rebuild answer: code 0 and exactly this chat, whole."""
        expect_equal(response.code, OK, what + ": code")
        expect_equal(response.chat.id, chat_id, what + ": chat.id")
        expect_equal((response.chat.visitor_data_offset, response.chat.agent_data_offset), offsets,
                     what + ": chat offsets")
        expect_equal(response.truncated, False, what + ": truncated")
        expect_equal(show(response.chat.messages), show(messages), what + ": chat.messages")
        for got, want in zip(response.chat.messages, messages):
            expect_equal(key(got), key(want), what + ": message " + want.id)
        trace("  %s -> code 0, %d/%d, %s" % (what, offsets[0], offsets[1], show(response.chat.messages)))

    def view(self, stub):
        """The server's whole chat, read from 0/0 page by page until the server's offsets."""
        caller, messages = (0, 0), []
        for _ in range(MAX_PAGES):
            response = self.read(stub, caller)
            expect_equal(response.code, OK, "full read from %d/%d: code" % caller)
            v, a = caller
            for message in response.messages:
                if side_of(self.pb, message.message_type) == "visitor":
                    expect_equal(message.data_offset, v + 1, "full read: visitor offset of " + message.id)
                    v += 1
                else:
                    expect_equal(message.data_offset, a + 1, "full read: agent offset of " + message.id)
                    a += 1
            messages.extend(response.messages)
            caller = (v, a)
            server = (response.visitor_data_offset, response.agent_data_offset)
            if caller == server:
                return messages, server
            expect(response.messages, "full read stalled at %d/%d below the server's %d/%d"
                   % (caller + server))
        raise Failure("full read did not reach the server's offsets in %d pages" % MAX_PAGES)

    # -- phase A

    def bad_input(self, stub):
        trace("A. bad input is a non-OK status, never a result code")
        invalid = self.grpc.StatusCode.INVALID_ARGUMENT
        message = self.new_message("bad", self.pb.MESSAGE_TYPE_VISITOR, "hello", self.visitor_info.id)
        self.expect_status(stub, "GetNewMessage", self.pb.GetNewMessageRequest(chat_id=""), invalid,
                           "GetNewMessage with empty chat_id")
        self.expect_status(stub, "AddVisitorMessage", self.pb.AddVisitorMessageRequest(chat_id="", message=message),
                           invalid, "AddVisitorMessage with empty chat_id")
        agent_message = self.new_message("bad", self.pb.MESSAGE_TYPE_AGENT, "hello", self.agent_id)
        self.expect_status(stub, "AddAgentMessage", self.pb.AddAgentMessageRequest(
            chat_id="", agent_id=self.agent_id, message=agent_message), invalid, "AddAgentMessage with empty chat_id")
        self.expect_status(stub, "Rebuild", self.pb.RebuildRequest(chat=self.pb.Chat(id="")), invalid,
                           "Rebuild with empty chat.id")
        self.expect_status(stub, "GetNewMessage", self.pb.GetNewMessageRequest(
            chat_id=self.chat_id + "-bad", visitor_offset=-1), invalid, "GetNewMessage with visitor_offset -1")

    def new_chat(self, stub):
        trace("A. a new chat: sends to a missing chat store nothing; the first read creates it")
        v1 = self.new_message("v1", self.pb.MESSAGE_TYPE_VISITOR, "hi, I need help", self.visitor_info.id)
        self.expect_rejected_send(self.send_visitor(stub, v1), MISSING, "visitor sends to a chat A lacks")
        a0 = self.new_message("a0", self.pb.MESSAGE_TYPE_AGENT, "welcome", self.agent_id)
        self.expect_rejected_send(self.send_agent(stub, a0), MISSING, "agent sends to a chat A lacks")
        # Had either send created or stored anything, the chat would exist now.
        self.expect_read(self.read(stub, (0, 0)), REBUILD_REQUIRED, MISSING, [],
                         "visitor reads the unknown chat (proves the sends stored nothing)")
        self.expect_read(self.read(stub, (0, 0)), OK, (0, 0), [], "visitor reads again: the chat now exists, empty")
        chat = self.visitor.to_chat(visitor=self.visitor_info)
        chat.begin_time.GetCurrentTime()
        response = self.rebuild(stub, chat)
        self.expect_chat(response, self.chat_id, (0, 0), [], "visitor rebuilds with its empty copy")
        expect_equal((response.chat.visitor.id, response.chat.visitor.name, response.chat.visitor.email),
                     (self.visitor_info.id, self.visitor_info.name, self.visitor_info.email),
                     "rebuild answer: chat.visitor")
        self.visitor.adopt(response.chat)
        self.expect_read(self.read(stub, (0, 0)), OK, (0, 0), [], "agent reads the empty chat")
        return v1

    def talk(self, stub, v1):
        trace("A. visitor and agent talk; each side numbers its own messages from 1")
        stored_v1 = self.expect_stored(self.send_visitor(stub, v1), v1, 1, (1, 0), "visitor sends V1 (resent after rebuild)")
        self.visitor.absorb(stored_v1)
        v2 = self.new_message("v2", self.pb.MESSAGE_TYPE_VISITOR, "my order is late", self.visitor_info.id)
        stored_v2 = self.expect_stored(self.send_visitor(stub, v2), v2, 2, (2, 0), "visitor sends V2")
        self.visitor.absorb(stored_v2)
        a1 = self.new_message("a1", self.pb.MESSAGE_TYPE_AGENT, "let me check", self.agent_id)
        stored_a1 = self.expect_stored(self.send_agent(stub, a1), a1, 1, (2, 1), "agent sends A1 (agent side 1)")
        self.agent.absorb(stored_a1)
        b1 = self.new_message("b1", self.pb.MESSAGE_TYPE_BOT, "order #42: shipped", self.bot_id)
        stored_b1 = self.expect_stored(self.send_agent(stub, b1, caller=(0, 0), agent_id=self.bot_id), b1, 2, (2, 2),
                                       "bot (holding nothing, 0/0) posts B1 (agent side 2)")

        trace("A. resends of a stored id return the stored message and create nothing")
        response = self.send_visitor(stub, v2, caller=(1, 0))
        self.expect_answer(response, OK, (2, 2), "visitor resends V2 with its pre-send offsets 1/0")
        expect_equal(key(response.message), key(stored_v2), "resent V2: the stored message")
        trace("  visitor resends V2 -> code 0, 2/2, the stored %s@%d" % (response.message.id, response.message.data_offset))
        response = self.send_agent(stub, a1)
        self.expect_answer(response, OK, (2, 2), "agent resends A1")
        expect_equal(key(response.message), key(stored_a1), "resent A1: the stored message")
        trace("  agent resends A1 -> code 0, 2/2, the stored %s@%d" % (response.message.id, response.message.data_offset))

        trace("A. reads return exactly what lies above the caller's offsets")
        self.expect_read(self.read(stub, (0, 0)), OK, (2, 2), conversation(self.pb, [stored_v1, stored_v2, stored_a1, stored_b1]),
                         "read from 0/0 (4 messages: the resends created nothing)")
        self.expect_read(self.read(stub, (1, 1)), OK, (2, 2), conversation(self.pb, [stored_v2, stored_b1]), "read from 1/1")
        response = self.read(stub, self.visitor.offsets())
        self.expect_read(response, OK, (2, 2), [stored_a1, stored_b1], "visitor reads from 2/0")
        for message in response.messages:
            self.visitor.absorb(message)
        response = self.read(stub, self.agent.offsets())
        self.expect_read(response, OK, (2, 2), conversation(self.pb, [stored_v1, stored_v2, stored_b1]), "agent reads from 0/1")
        for message in response.messages:
            self.agent.absorb(message)
        expect_equal(self.visitor.offsets(), (2, 2), "visitor's offsets after reading")
        expect_equal(self.agent.offsets(), (2, 2), "agent's offsets after reading")

        trace("A. a caller ahead of the server gets code 1 with the server's offsets, nothing stored")
        self.expect_read(self.read(stub, (5, 0)), REBUILD_REQUIRED, (2, 2), [], "read from 5/0")
        self.expect_read(self.read(stub, (2, 3)), REBUILD_REQUIRED, (2, 2), [], "read from 2/3")
        x = self.new_message("x", self.pb.MESSAGE_TYPE_VISITOR, "from the future", self.visitor_info.id)
        self.expect_rejected_send(self.send_visitor(stub, x, caller=(0, 9)), (2, 2), "visitor sends with offsets 0/9")
        y = self.new_message("y", self.pb.MESSAGE_TYPE_AGENT, "from the future", self.agent_id)
        self.expect_rejected_send(self.send_agent(stub, y, caller=(3, 2)), (2, 2), "agent sends with offsets 3/2")
        self.expect_read(self.read(stub, (2, 2)), OK, (2, 2), [], "read from 2/2 (the refused sends stored nothing)")

        trace("A. rebuilding a chat the server already holds changes nothing")
        whole = self.visitor.messages()
        for attempt in ("once", "twice"):
            response = self.rebuild(stub, self.visitor.to_chat(visitor=self.visitor_info))
            self.expect_chat(response, self.chat_id, (2, 2), whole, "visitor uploads its whole copy " + attempt)

        trace("A. before the failover each side sends one message the other has not read")
        v3 = self.new_message("v3", self.pb.MESSAGE_TYPE_VISITOR, "any news?", self.visitor_info.id)
        self.visitor.absorb(self.expect_stored(self.send_visitor(stub, v3), v3, 3, (3, 2), "visitor sends V3"))
        a2 = self.new_message("a2", self.pb.MESSAGE_TYPE_AGENT, "it arrives tomorrow", self.agent_id)
        self.agent.absorb(self.expect_stored(self.send_agent(stub, a2), a2, 3, (3, 3), "agent sends A2 (caller 2/2)"))
        expect_equal(self.visitor.offsets(), (3, 2), "visitor's offsets at the failover")
        expect_equal(self.agent.offsets(), (2, 3), "agent's offsets at the failover")

    def rebuild_from_copies(self, stub):
        """Rebuild of a chat A never held, from two clients' copies (incremental for the second)."""
        trace("A. Rebuild creates a chat from a client's copy and merges a second copy into it")
        pb = self.pb
        chat_id = self.chat_id + "-copy"
        suffix = uuid.uuid4().hex[:8]

        def message(mid, offset, message_type, sender, seconds):
            m = pb.ChatMessage(id="%s-%s" % (mid, suffix), data_offset=offset, content="text of " + mid,
                               message_type=message_type, sender_id=sender)
            m.send_time.seconds = seconds
            return m

        w1 = message("w1", 1, pb.MESSAGE_TYPE_VISITOR, self.visitor_info.id, 1700000000)
        s1 = message("s1", 1, pb.MESSAGE_TYPE_SYSTEM, "svc-routing", 1700000001)
        w2 = message("w2", 2, pb.MESSAGE_TYPE_VISITOR, self.visitor_info.id, 1700000002)
        g2 = message("g2", 2, pb.MESSAGE_TYPE_AGENT, self.agent_id, 1700000003)
        visitor_copy = pb.Chat(id=chat_id, visitor_data_offset=2, agent_data_offset=1, messages=[w1, s1, w2])
        visitor_copy.visitor.CopyFrom(self.visitor_info)
        self.expect_read(self.read(stub, (2, 1), chat_id), REBUILD_REQUIRED, MISSING, [],
                         "visitor (2/1) reads a chat A lacks")
        for attempt in ("", " again"):
            self.expect_chat(self.rebuild(stub, visitor_copy), chat_id, (2, 1), [w1, s1, w2],
                             "visitor uploads its copy (2/1)" + attempt)
        self.expect_read(self.read(stub, (2, 2), chat_id), REBUILD_REQUIRED, (2, 1), [],
                         "agent (2/2) reads: ahead on the agent side")
        upload = pb.Chat(id=chat_id, visitor_data_offset=2, agent_data_offset=2, messages=[g2])
        self.expect_chat(self.rebuild(stub, upload), chat_id, (2, 2), [w1, s1, w2, g2],
                         "agent uploads only what A lacks (g2@2)")
        self.expect_read(self.read(stub, (2, 1), chat_id), OK, (2, 2), [g2], "visitor reads from 2/1")

    # -- phase B

    def failover(self, stub):
        trace("B. the clients land on B, which lacks the chat")
        a3 = self.new_message("a3", self.pb.MESSAGE_TYPE_AGENT, "anything else?", self.agent_id)
        self.expect_rejected_send(self.send_agent(stub, a3), MISSING, "agent (2/3) sends A3 to B")
        self.expect_read(self.read(stub, self.visitor.offsets()), REBUILD_REQUIRED, MISSING, [],
                         "visitor (3/2) reads from B (B creates the chat empty)")
        self.expect_read(self.read(stub, self.agent.offsets()), REBUILD_REQUIRED, (0, 0), [],
                         "agent (2/3) reads from B: ahead of B's empty chat")

        trace("B. both rebuild B from their local copies")
        expected = self.visitor.messages()
        response = self.rebuild(stub, self.visitor.to_chat(visitor=self.visitor_info))
        self.expect_chat(response, self.chat_id, (3, 2), expected, "visitor uploads its whole copy")
        self.visitor.adopt(response.chat)
        self.expect_read(self.read(stub, self.agent.offsets()), REBUILD_REQUIRED, (3, 2), [],
                         "agent (2/3) reads: ahead on the agent side")
        expected = conversation(self.pb, self.visitor.messages() + [self.agent.by_side["agent"][3]])
        response = self.rebuild(stub, self.agent.to_chat(only_above=(3, 2)))
        self.expect_chat(response, self.chat_id, (3, 3), expected, "agent uploads what B lacks (above 3/2)")
        self.agent.adopt(response.chat)
        response = self.rebuild(stub, self.agent.to_chat())
        self.expect_chat(response, self.chat_id, (3, 3), expected, "agent uploads its whole copy: nothing changes")
        response = self.read(stub, self.visitor.offsets())
        self.expect_read(response, OK, (3, 3), [self.agent.by_side["agent"][3]], "visitor reads from 3/2")
        for message in response.messages:
            self.visitor.absorb(message)

        trace("B. they keep talking on B")
        self.agent.absorb(self.expect_stored(self.send_agent(stub, a3), a3, 4, (3, 4), "agent resends A3, now accepted"))
        v4 = self.new_message("v4", self.pb.MESSAGE_TYPE_VISITOR, "no, thanks!", self.visitor_info.id)
        self.visitor.absorb(self.expect_stored(self.send_visitor(stub, v4), v4, 4, (4, 4), "visitor sends V4"))
        b2 = self.new_message("b2", self.pb.MESSAGE_TYPE_BOT, "please rate this chat", self.bot_id)
        stored_b2 = self.expect_stored(self.send_agent(stub, b2, caller=(0, 0), agent_id=self.bot_id), b2, 5, (4, 5),
                                       "bot posts B2")
        response = self.read(stub, self.visitor.offsets())
        self.expect_read(response, OK, (4, 5), [self.agent.by_side["agent"][4], stored_b2], "visitor reads from 4/3")
        for message in response.messages:
            self.visitor.absorb(message)
        response = self.read(stub, self.agent.offsets())
        self.expect_read(response, OK, (4, 5), conversation(self.pb, [self.visitor.by_side["visitor"][4], stored_b2]),
                         "agent reads from 3/4")
        for message in response.messages:
            self.agent.absorb(message)

        trace("B. convergence: visitor's copy == agent's copy == B's view")
        server, offsets = self.view(stub)
        for name, copy in (("visitor", self.visitor), ("agent", self.agent)):
            expect_equal(copy.offsets(), offsets, name + "'s offsets vs B's")
            expect_equal(show(copy.messages()), show(server), name + "'s copy vs B's view")
            expect_equal([key(m) for m in copy.messages()], [key(m) for m in server], name + "'s copy vs B's view (fields)")
        for side, count in (("visitor", offsets[0]), ("agent", offsets[1])):
            got = sorted(m.data_offset for m in server if side_of(self.pb, m.message_type) == side)
            expect_equal(got, list(range(1, count + 1)), "B's %s offsets are 1..N" % side)
        ids = [m.id for m in server]
        expect_equal(len(set(ids)), len(ids), "message ids are unique")
        expect_equal(set(ids), set(self.sent), "B holds every acknowledged message and nothing else")
        trace("  B's view, the visitor's copy and the agent's copy: %d/%d, %s" % (offsets + (show(server),)))

    def support(self, stub):
        """The support conversation on a chat of its own: events, attachments, read positions,
        typing, the end and its transcript (proto/chat/v1/chat.proto, src/domain/store.ts)."""
        pb, codes = self.pb, self.grpc.StatusCode
        chat_id = self.chat_id + "-support"
        trace("A. the support conversation, chat %s" % chat_id)

        def request(method, **fields):
            return getattr(pb, method + "Request")(chat_id=chat_id, **fields)

        answer = self.call(stub, "Rebuild", pb.RebuildRequest(chat=pb.Chat(id=chat_id, visitor=self.visitor_info)))
        expect_equal(answer.code, OK, "Rebuild of a new support chat: code")
        epoch = answer.chat.epoch
        # Attachments: references, checked field by field; at most 10.
        sha = hashlib.sha256(b"receipt").hexdigest()
        good = pb.Attachment(uri="https://files.example.test/receipt.pdf", media_type="application/pdf",
                             size_bytes=48213, sha256=sha, name="receipt.pdf")
        v1 = pb.ChatMessage(id="sv-1", content="my receipt", message_type=pb.MESSAGE_TYPE_VISITOR,
                            sender_id=self.visitor_info.id, attachments=[good])
        sent = self.call(stub, "AddVisitorMessage", request("AddVisitorMessage", message=v1, epoch=epoch))
        expect_equal(sent.code, OK, "a visitor message with an attachment: code")
        expect_equal(list(sent.message.attachments), [good], "the attachment as stored")
        bad = {
            "an http uri": dict(uri="http://files.example.test/x"),
            "a media type without a subtype": dict(media_type="pdf"),
            "size 0": dict(size_bytes=0),
            "size above 100 MiB": dict(size_bytes=100 * 1024 * 1024 + 1),
            "an uppercase sha256": dict(sha256=sha.upper()),
            "a short sha256": dict(sha256=sha[:63]),
            "a name with a slash": dict(name="a/b.pdf"),
            "a name with a control character": dict(name="a\x01.pdf"),
        }
        for what, change in bad.items():
            attachment = pb.Attachment()
            attachment.CopyFrom(good)
            for field, value in change.items():
                setattr(attachment, field, value)
            message = pb.ChatMessage(id="bad-att", content="x", message_type=pb.MESSAGE_TYPE_VISITOR,
                                     sender_id=self.visitor_info.id, attachments=[attachment])
            self.expect_status(stub, "AddVisitorMessage", request("AddVisitorMessage", message=message, epoch=epoch),
                               codes.INVALID_ARGUMENT, "an attachment with " + what)
        eleven = pb.ChatMessage(id="bad-att", content="x", message_type=pb.MESSAGE_TYPE_VISITOR,
                                sender_id=self.visitor_info.id, attachments=[good] * 11)
        self.expect_status(stub, "AddVisitorMessage", request("AddVisitorMessage", message=eleven, epoch=epoch),
                           codes.INVALID_ARGUMENT, "11 attachments")

        def event(message_id, kind, participant, to="", reason=""):
            message = pb.ChatMessage(id=message_id, content="", message_type=pb.MESSAGE_TYPE_SYSTEM,
                                     event=pb.ChatEvent(kind=kind, participant_id=participant,
                                                        to_participant_id=to, reason=reason))
            return self.invoke(stub, "AddAgentMessage", request("AddAgentMessage", agent_id="support-bot",
                                                                message=message, epoch=epoch))

        joined = event("se-1", pb.EVENT_KIND_JOINED, "agent-1")
        expect_equal((joined.code, joined.message.event.kind, joined.message.content), (OK, pb.EVENT_KIND_JOINED, ""),
                     "a JOINED event with empty content")
        try:
            event("se-bad", pb.EVENT_KIND_UNSPECIFIED, "agent-1")
            raise Failure("an event without a kind was stored")
        except self.grpc.RpcError as error:
            expect_equal(error.code(), codes.INVALID_ARGUMENT, "an event without a kind")

        # A watch from the chat's position: the first response at once, then message-less
        # responses for typing and read positions.
        read = self.call(stub, "GetNewMessage", request("GetNewMessage", epoch=epoch))
        watch = stub.WatchChat(request("WatchChat", visitor_offset=read.visitor_data_offset,
                                       agent_offset=read.agent_data_offset, epoch=epoch),
                               timeout=15, metadata=self.keys.prepared("WatchChat", pb.WatchChatRequest())[1] if self.keys else None)
        first = next(watch)
        expect_equal((first.code, len(first.messages), first.ended), (OK, 0, False), "the watch's first response")
        typing = self.call(stub, "SetTyping", request("SetTyping", participant_id="agent-1", typing=True))
        expect(typing.HasField("expire_time") and typing.expire_time.seconds >= int(time.time()),
               "SetTyping: an expire_time ahead")
        pushed = next(watch)
        expect_equal(([m.id for m in pushed.messages], [t.participant_id for t in pushed.typing]), ([], ["agent-1"]),
                     "the watch pushed the typing, without messages")
        self.expect_status(stub, "SetTyping", pb.SetTypingRequest(chat_id=chat_id + "-none", participant_id="agent-1", typing=True),
                           codes.NOT_FOUND, "SetTyping on a chat the server does not hold")

        # Read positions: by message id; the furthest is kept.
        marked = self.call(stub, "MarkRead", request("MarkRead", reader_id="agent-1", message_id="sv-1", epoch=epoch))
        expect_equal((marked.code, [(p.reader_id, p.message_id) for p in marked.read_positions]),
                     (OK, [("agent-1", "sv-1")]), "MarkRead")
        while True:  # the typing may lapse in between: the read position comes in a response of its own
            pushed = next(watch)
            if pushed.read_positions:
                break
        expect_equal(([m.id for m in pushed.messages], [(p.reader_id, p.message_id) for p in pushed.read_positions]),
                     ([], [("agent-1", "sv-1")]), "the watch pushed the read position, without messages")
        watch.cancel()
        self.expect_status(stub, "MarkRead", request("MarkRead", reader_id="agent-1", message_id="no-such", epoch=epoch),
                           codes.NOT_FOUND, "MarkRead of an unknown message id")
        other = self.call(stub, "MarkRead", request("MarkRead", reader_id="agent-1", message_id="sv-1", epoch="another"))
        expect_equal(other.code, REBUILD_REQUIRED, "MarkRead with another epoch: code")
        missing = self.call(stub, "MarkRead", pb.MarkReadRequest(chat_id=chat_id + "-none", reader_id="agent-1", message_id="sv-1"))
        expect_equal(missing.code, REBUILD_REQUIRED, "MarkRead on a missing chat: code")
        marked = self.call(stub, "MarkRead", request("MarkRead", reader_id="agent-1", message_id="se-1", epoch=epoch))
        expect_equal([(p.reader_id, p.message_id) for p in marked.read_positions], [("agent-1", "se-1")], "MarkRead further")
        marked = self.call(stub, "MarkRead", request("MarkRead", reader_id="agent-1", message_id="sv-1", epoch=epoch))
        expect_equal([(p.reader_id, p.message_id) for p in marked.read_positions], [("agent-1", "se-1")],
                     "MarkRead of an earlier message: the position does not move back")
        read = self.call(stub, "GetNewMessage", request("GetNewMessage", epoch=epoch))
        expect_equal(([(p.reader_id, p.message_id) for p in read.read_positions], read.ended),
                     ([("agent-1", "se-1")], False), "GetNewMessage: read positions, not ended")

        # A transfer, the end, and its transcript.
        transcripts = stub.WatchTranscripts(pb.WatchTranscriptsRequest(), timeout=15,
                                            metadata=self.keys.prepared("WatchTranscripts", pb.WatchTranscriptsRequest())[1] if self.keys else None)
        expect_equal(event("se-2", pb.EVENT_KIND_TRANSFERRED, "agent-1", to="agent-2", reason="shift").code, OK, "TRANSFERRED")
        expect_equal(event("se-3", pb.EVENT_KIND_JOINED, "agent-2").code, OK, "JOINED")
        ended = event("se-4", pb.EVENT_KIND_ENDED, "agent-2", reason="resolved")
        expect_equal(ended.code, OK, "ENDED")
        late = pb.ChatMessage(id="sv-2", content="one more thing", message_type=pb.MESSAGE_TYPE_VISITOR,
                              sender_id=self.visitor_info.id)
        self.expect_status(stub, "AddVisitorMessage", request("AddVisitorMessage", message=late, epoch=epoch),
                           codes.FAILED_PRECONDITION, "a send after the end")
        again = self.call(stub, "AddVisitorMessage", request("AddVisitorMessage", message=v1, epoch=epoch))
        expect_equal((again.code, again.message.id), (OK, "sv-1"), "a resend of a held message after the end")
        self.expect_status(stub, "SetTyping", request("SetTyping", participant_id="agent-1", typing=True),
                           codes.FAILED_PRECONDITION, "SetTyping after the end")
        read = self.call(stub, "GetNewMessage", request("GetNewMessage", epoch=epoch))
        expect_equal(read.ended, True, "GetNewMessage after the end: ended")
        for offer in transcripts:
            if offer.chat.id == chat_id:
                break
        expect_equal((offer.chat.epoch, offer.message_count, offer.truncated, [m.id for m in offer.chat.messages]),
                     (epoch, 5, False, ["sv-1", "se-1", "se-2", "se-3", "se-4"]), "the transcript offered")
        expect(offer.HasField("end_time"), "the transcript's end_time")
        transcripts.cancel()
        self.call(stub, "AckTranscript", pb.AckTranscriptRequest(chat_id=chat_id, epoch=epoch, message_count=offer.message_count))
        trace("  transcript of %s: %d messages, acknowledged" % (chat_id, offer.message_count))
        # Acknowledged: a new stream does not offer it again.
        later = stub.WatchTranscripts(pb.WatchTranscriptsRequest(), timeout=1.5,
                                      metadata=self.keys.prepared("WatchTranscripts", pb.WatchTranscriptsRequest())[1] if self.keys else None)
        try:
            for offer in later:
                expect(offer.chat.id != chat_id, "an acknowledged transcript was offered again")
        except self.grpc.RpcError as error:
            expect_equal(error.code(), codes.DEADLINE_EXCEEDED, "the later transcript stream's end")

    def run(self, wait_for_failover):
        channel_a, stub_a = self.connect(self.addr_a)
        trace("phase A on %s, chat %s" % (self.addr_a, self.chat_id))
        self.bad_input(stub_a)
        v1 = self.new_chat(stub_a)
        self.talk(stub_a, v1)
        self.rebuild_from_copies(stub_a)
        self.support(stub_a)
        channel_a.close()

        trace("READY_FOR_FAILOVER")
        wait_for_failover()

        channel_b, stub_b = self.connect(self.addr_b)
        trace("phase B on %s only" % self.addr_b)
        self.failover(stub_b)
        channel_b.close()


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: %s ADDR_A ADDR_B\n" % argv[0])
        return 2
    try:
        import grpc
    except ImportError:
        sys.stderr.write("this python (%s) has no grpc: apt-get install -y python3-grpcio python3-grpc-tools\n"
                         % sys.executable)
        return 2
    pb, rpc, temp, command = load_generated()
    from google.protobuf.internal import api_implementation

    trace("generated %s with: %s" % (PROTO_FILE, " ".join(command[1:])))
    trace("grpcio %s, protobuf runtime %s" % (grpc.__version__, api_implementation.Type()))

    def wait_for_failover():
        line = sys.stdin.readline()
        if not line:
            raise Failure("stdin closed before the failover signal")

    try:
        Flows(grpc, pb, rpc, argv[1], argv[2]).run(wait_for_failover)
    except Failure as failure:
        sys.stdout.flush()
        sys.stderr.write("FAIL: %s\n" % failure)
        return 1
    finally:
        temp.cleanup()
    trace("PASS: every answer matched docs/reference.md sections 2-3")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
