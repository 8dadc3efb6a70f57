"""A transcript archiver: stores the final history of every chat that ends (docs/python.md, "Transcripts").

  python3 examples/python/transcript_archiver.py --servers localhost:50051,localhost:50052 --dir transcripts

It watches WatchTranscripts on every server of the list (a transcript is offered by the server
that holds the ended chat), stores each transcript idempotently by (chat id, epoch), keeping
the revision with the larger message_count, and acknowledges it with AckTranscript only once it
is stored. Offers come at least once: again after a reconnect before the ack, and again when an
ended chat takes more messages (a late message merged by a rebuild). The calls need a service
token (--token-env), unless the server runs --insecure.

`archive_copy(chat)` stores an agent's own copy of a chat (a pb.Chat) the same way: the server
keeps chats in memory only, and a transcript it lost before anyone archived it can be completed
from a participant's copy.

Prints JSON lines: ready, archived, kept, acked, watch-ended, bye.
"""

import argparse
import json
import os
import sys
import threading

import grpc

from connection import CHANNEL_OPTIONS, backoff_s
from stubs import pb, rpc

from google.protobuf import json_format


class TranscriptStore:
    """Transcripts in a directory, one JSON file per (chat id, epoch): a later offer of the same
    incarnation replaces the file only when it holds more messages (an incarnation only grows)."""

    def __init__(self, directory):
        self.directory = directory
        self.lock = threading.Lock()
        os.makedirs(directory, exist_ok=True)

    def _path(self, chat_id, epoch):
        return os.path.join(self.directory, "%s.%s.json" % (chat_id.encode("utf-8").hex(), epoch.encode("utf-8").hex()))

    def put(self, chat, message_count, truncated=False):
        """Stores `chat` unless a revision with at least as many messages is stored. Returns
        whether it was stored, and the message_count now held."""
        with self.lock:
            path = self._path(chat.id, chat.epoch)
            held = self.count(chat.id, chat.epoch)
            if held is not None and held >= message_count:
                return False, held
            record = {"chat_id": chat.id, "epoch": chat.epoch, "message_count": message_count,
                      "truncated": truncated, "chat": json_format.MessageToDict(chat)}
            with open(path + ".tmp", "w") as out:
                json.dump(record, out)
            os.replace(path + ".tmp", path)  # whole or not at all
            return True, message_count

    def count(self, chat_id, epoch):
        try:
            with open(self._path(chat_id, epoch)) as stored:
                return json.load(stored)["message_count"]
        except FileNotFoundError:
            return None

    def all(self):
        with self.lock:
            records = []
            for name in sorted(os.listdir(self.directory)):
                if name.endswith(".json"):
                    with open(os.path.join(self.directory, name)) as stored:
                        records.append(json.load(stored))
            return records


class Archiver:
    def __init__(self, store, token=None, events=None):
        self.store = store
        self.metadata = (("authorization", "Bearer " + token),) if token else ()
        self.events = events or (lambda kind, **fields: None)

    def follow(self, address, stop):
        """Watches one server's transcripts until `stop`, again after every end or break."""
        channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        stub = rpc.ChatServiceStub(channel)
        breaks = 0
        while not stop.is_set():
            stream = stub.WatchTranscripts(pb.WatchTranscriptsRequest(), metadata=self.metadata)
            stopper = threading.Thread(target=lambda: (stop.wait(), stream.cancel()), daemon=True)
            stopper.start()
            try:
                for offer in stream:
                    breaks = 0
                    self.take(stub, address, offer)
                self.events("watch-ended", address=address, status="OK")
            except grpc.RpcError as error:
                if stop.is_set():
                    break
                self.events("watch-ended", address=address, status=error.code().name)
                if error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                    break  # not a service token: retrying cannot help
                breaks += 1
                stop.wait(backoff_s(breaks))
        channel.close()

    def take(self, stub, address, offer):
        """Stores one offer, then acknowledges it: the ack says "archived", so never before."""
        chat = offer.chat
        stored, held = self.store.put(chat, offer.message_count, offer.truncated)
        self.events("archived" if stored else "kept", address=address, chat=chat.id, epoch=chat.epoch,
                    message_count=offer.message_count, held=held, truncated=offer.truncated)
        stub.AckTranscript(pb.AckTranscriptRequest(chat_id=chat.id, epoch=chat.epoch,
                                                   message_count=offer.message_count),
                           timeout=5.0, metadata=self.metadata)
        self.events("acked", address=address, chat=chat.id, epoch=chat.epoch, message_count=offer.message_count)

    def archive_copy(self, chat):
        """Stores a participant's own copy of an ended chat (a pb.Chat, as its Rebuild would
        upload it) when the server lost the transcript: same key, same rule."""
        stored, held = self.store.put(chat, len(chat.messages))
        self.events("archived" if stored else "kept", address=None, chat=chat.id, epoch=chat.epoch,
                    message_count=len(chat.messages), held=held, truncated=False)
        return stored


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", required=True, help="comma-separated host:port list: every server")
    parser.add_argument("--dir", required=True, help="where the transcripts are stored")
    parser.add_argument("--token-env", help="the environment variable holding a service token")
    args = parser.parse_args()

    lock = threading.Lock()

    def emit(kind, **fields):
        with lock:
            print(json.dumps(dict(event=kind, **fields)), flush=True)

    token = os.environ[args.token_env] if args.token_env else None
    archiver = Archiver(TranscriptStore(args.dir), token=token, events=emit)
    stop = threading.Event()
    followers = [threading.Thread(target=archiver.follow, args=(address, stop), daemon=True)
                 for address in args.servers.split(",")]
    for follower in followers:
        follower.start()
    emit("ready", servers=args.servers.split(","))
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        if line.strip() == "list":
            emit("stored", transcripts=[{k: r[k] for k in ("chat_id", "epoch", "message_count")}
                                        for r in archiver.store.all()])
    stop.set()
    for follower in followers:
        follower.join(timeout=5)
    emit("bye")


if __name__ == "__main__":
    main()
