"""One chat participant (or the copy-less bot) driven by lines on stdin, reporting JSON lines on stdout.

  python3 examples/python/chat_cli.py visitor --chat order-4711 --servers localhost:50051
  python3 examples/python/chat_cli.py agent --chat order-4711 --servers localhost:50051 --receive poll
  python3 examples/python/chat_cli.py bot --chat order-4711 --servers localhost:50051

Commands: `send ID TEXT` (`-` as ID makes one), `sync`, `dump` (the copy: participants only),
`quit`. Every line out is a JSON object with an "event": ready, sent, message, rebuild,
waiting, reposted, watch-ended, failure, synced, copy, error, bye. test/interop/python-guide.test.ts
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
        return {"id": value.id, "side": side_of(value), "offset": value.data_offset,
                "type": pb.MessageType.Name(value.message_type), "content": value.content,
                "sender": value.sender_id, "time": [value.send_time.seconds, value.send_time.nanos]}
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
            elif command == "sync" and args.role != "bot":
                emit("synced", fresh=len(client.catch_up()))
            elif command == "dump" and args.role != "bot":
                with client.lock:
                    emit("copy", epoch=client.epoch, offsets=list(client.offsets()),
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
