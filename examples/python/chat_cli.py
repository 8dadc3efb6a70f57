"""One chat participant (or the copy-less bot) driven by lines on stdin, reporting JSON lines on stdout.

  python3 examples/python/chat_cli.py visitor --chat order-4711 --servers localhost:50051
  python3 examples/python/chat_cli.py agent --chat order-4711 --servers localhost:50051 --receive poll
  python3 examples/python/chat_cli.py bot --chat order-4711 --servers localhost:50051

Commands: `send ID TEXT` (`-` as ID makes one), `sync`, `dump` (the copy: participants only),
`quit`; and for participants: `join ID`, `transfer ID TO REASON`, `end ID REASON` (lifecycle
events about the sender), `attach ID URI MEDIA_TYPE SIZE SHA256 NAME TEXT` (a message with
one attachment), `typing on|off`, `read MESSAGE_ID`. Every line out is a JSON object with an
"event": ready, sent, message, state, rebuild, waiting, reposted, watch-ended, failure, synced,
copy, typing, read, error, bye. test/interop/python-guide.test.ts
drives three of these through a failover.
"""

import argparse
import json
import os
import sys
import threading
import uuid

from connection import Connection
from local_copy import side_of
from notice_bot import NoticeBot
from participant import Participant
from stubs import pb

_print_lock = threading.Lock()


def emit(kind, **fields):
    with _print_lock:
        print(json.dumps(dict(event=kind, **{k: encode(v) for k, v in fields.items()})), flush=True)


def encode(value):
    if isinstance(value, pb.ChatMessage):
        encoded = {"id": value.id, "side": side_of(value), "offset": value.data_offset,
                   "type": pb.MessageType.Name(value.message_type), "content": value.content,
                   "sender": value.sender_id, "time": [value.send_time.seconds, value.send_time.nanos]}
        if value.HasField("event"):
            encoded["chat_event"] = {"kind": pb.EventKind.Name(value.event.kind),
                                     "participant": value.event.participant_id,
                                     "to": value.event.to_participant_id, "reason": value.event.reason}
        if value.attachments:
            encoded["attachments"] = [{"uri": a.uri, "media_type": a.media_type, "size_bytes": a.size_bytes,
                                       "sha256": a.sha256, "name": a.name} for a in value.attachments]
        return encoded
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["visitor", "agent", "bot"])
    parser.add_argument("--chat", required=True)
    parser.add_argument("--servers", required=True, help="comma-separated host:port list (one for a load balancer)")
    parser.add_argument("--id", help="the visitor's, agent's or bot's id (default: ROLE-py)")
    parser.add_argument("--receive", choices=["watch", "poll", "none"], default="watch")
    parser.add_argument("--poll-interval-s", type=float, default=1.0)
    parser.add_argument("--call-timeout-s", type=float, default=5.0)
    parser.add_argument("--max-upload-bytes", type=int, default=256 * 1024)
    parser.add_argument("--bot-wait-s", type=float, default=30.0)
    parser.add_argument("--token-env", help="the environment variable holding a bearer token for the calls")
    args = parser.parse_args()

    token = os.environ[args.token_env] if args.token_env else None
    connection = Connection(args.chat, args.servers.split(","), call_timeout_s=args.call_timeout_s, token=token)
    connection.on_move(lambda address: emit("moved", address=address))
    sender = args.id or args.role + "-py"
    stop = threading.Event()
    receiver = None
    if args.role == "bot":
        client = NoticeBot(connection, sender, wait_s=args.bot_wait_s, events=emit)
    else:
        visitor = pb.Visitor(id=sender, name="Python visitor") if args.role == "visitor" else None
        client = Participant(connection, args.role, sender, visitor=visitor, max_upload_bytes=args.max_upload_bytes,
                             events=emit)
        if args.receive != "none":
            receive = client.watch if args.receive == "watch" else lambda s: client.poll(s, args.poll_interval_s)
            receiver = threading.Thread(target=receive, args=(stop,), daemon=True)
            receiver.start()
    emit("ready", role=args.role, order=connection.order)

    for line in sys.stdin:
        command, _, rest = line.rstrip("\r\n").partition(" ")
        try:
            if command == "send":
                message_id, _, text = rest.partition(" ")
                message_id = None if message_id == "-" else message_id
                if args.role == "bot":
                    stored = client.post(message_id or "%s-%s" % (sender, uuid.uuid4()), text)
                else:
                    stored = client.send(text, message_id)
                emit("sent", message=stored, address=connection.address)
            elif command in ("join", "transfer", "end") and args.role != "bot":
                message_id, _, rest = rest.partition(" ")
                to, reason = rest.partition(" ")[::2] if command == "transfer" else ("", rest)
                kind = {"join": pb.EVENT_KIND_JOINED, "transfer": pb.EVENT_KIND_TRANSFERRED,
                        "end": pb.EVENT_KIND_ENDED}[command]
                event = pb.ChatEvent(kind=kind, participant_id=sender, to_participant_id=to, reason=reason)
                emit("sent", message=client.send("", message_id, event=event), address=connection.address)
            elif command == "attach" and args.role != "bot":
                message_id, uri, media_type, size, sha256, name, text = rest.split(" ", 6)
                attachment = pb.Attachment(uri=uri, media_type=media_type, size_bytes=int(size), sha256=sha256, name=name)
                emit("sent", message=client.send(text, message_id, attachments=[attachment]), address=connection.address)
            elif command == "typing" and args.role != "bot":
                expires = client.set_typing(rest == "on")
                emit("typing", typing=rest == "on", expires=expires.ToJsonString() if expires else None)
            elif command == "read" and args.role != "bot":
                emit("read", read_positions=client.mark_read(rest))
            elif command == "sync" and args.role != "bot":
                emit("synced", fresh=len(client.catch_up()))
            elif command == "dump" and args.role != "bot":
                with client.lock:
                    emit("copy", epoch=client.epoch, offsets=list(client.offsets()), ended=client.ended,
                         read_positions=client.read_positions,
                         messages=[encode(m) for m in client.copy.conversation()], strays=len(client.copy.strays))
            elif command == "quit":
                break
            elif command:
                emit("error", error="unknown command: " + line.strip())
        except Exception as error:  # noqa: BLE001 (reported to the driver, which decides)
            emit("error", command=command, error="%s: %s" % (type(error).__name__, error))
    stop.set()
    if receiver is not None:
        receiver.join(timeout=10)  # a catch-up under way finishes first
    connection.close()
    emit("bye")


if __name__ == "__main__":
    main()
