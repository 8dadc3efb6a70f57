"""The Python stubs of proto/chat/v1/chat.proto, generated as docs/python.md ("Stubs") shows.

Every other example imports `pb` (the messages) and `rpc` (the service stub) from here. The
stubs live in examples/python/generated/ (not committed: run the command below from the
repository root, again after every change to the .proto), or in $CHAT_PY_GENERATED.
"""

import os
import sys

GENERATE = ("mkdir -p examples/python/generated && python3 -m grpc_tools.protoc -I proto --python_out=examples/python/generated "
            "--grpc_python_out=examples/python/generated proto/chat/v1/chat.proto")
GENERATED = os.environ.get("CHAT_PY_GENERATED") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated")

sys.path.insert(0, GENERATED)
try:
    from chat.v1 import chat_pb2 as pb  # noqa: E402  (messages and enums; imports google.protobuf.timestamp_pb2)
    from chat.v1 import chat_pb2_grpc as rpc  # noqa: E402  (ChatServiceStub)
except ImportError as error:
    raise SystemExit("no stubs in %s (%s); from the repository root run:\n  %s" % (GENERATED, error, GENERATE))

__all__ = ["pb", "rpc"]
