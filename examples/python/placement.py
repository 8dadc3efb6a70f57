"""Which server is a chat's home: the same rendezvous hashing as the TypeScript SDK.

Usage: python3 examples/python/placement.py CHAT_ID ADDRESS...  (prints the order as JSON)
"""

import hashlib
import json
import sys


def placement(chat_id, addresses):
    """The addresses in the order the chat's clients try them: its home first.

    Each address scores the first 8 bytes of SHA-256(chat_id + "\\n" + address), read as an
    unsigned big-endian integer; the highest score is the home (src/client/placement.ts). Every
    client given the same addresses, spelled the same way, computes the same order.
    """
    def score(address):
        digest = hashlib.sha256((chat_id + "\n" + address).encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big")

    return sorted(dict.fromkeys(addresses), key=lambda address: (-score(address), address))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: placement.py CHAT_ID ADDRESS...")
    print(json.dumps(placement(sys.argv[1], sys.argv[2:])))
