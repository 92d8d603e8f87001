"""What Redis spends around each user's document, by layout: is a different layout worth it?

    python -m bench.memory_layouts [--users 50000] [--value-bytes 437] [--per-hash 100]

`bench.memory` measures relevo's layout: one string key per user (the compact profile
and its dedupe marks, about 437 bytes for 15 events) with a TTL. A key costs Redis
memory of its own (its entry in the key space and in the expiry table, its name, the
value's header), paid once per user. The usual way to pay it once per many users is to
put many users' documents in one hash (Redis keeps a small hash as one compact
``listpack``). This measures, on one fresh ``redis-server`` and the same documents
(random bytes, as incompressible as deflated profiles):

- **key per user**: ``SET p:{user} doc EX 90d`` (relevo's layout; the reference);
- **hash buckets, hashtable**: ``HSET pb:{bucket} user doc``, ``--per-hash`` users a
  bucket, with Redis's default encoding limits (a 437-byte value makes a real hash table);
- **hash buckets, listpack**: the same with ``hash-max-listpack-value`` raised above the
  document size, so each bucket is one listpack.

The last line is ``{"key_bytes_per_user", "hashtable_bytes_per_user",
"listpack_bytes_per_user", ...}``: ``used_memory`` per user, each layout on an empty
server. Buckets need more than memory to be usable: a field has no TTL before Redis 7.4
(``HEXPIRE``), so retention would need a sweeper, and every key of a user would have to
share the bucket's hash tag on a cluster.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable

import redis

from bench.support import print_table, redis_server

RETENTION_S = 90 * 86_400
PIPELINE = 1_000


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def per_user(
    client: redis.Redis, users: int, write: Callable[[redis.client.Pipeline], None]
) -> float:
    """`used_memory` added per user by `write`, from an empty server."""
    client.flushall()
    before = used_memory(client)
    pipeline = client.pipeline(transaction=False)
    write(pipeline)
    pipeline.execute()
    return (used_memory(client) - before) / users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--value-bytes", type=int, default=437, help="one user's document")
    parser.add_argument("--per-hash", type=int, default=100, help="users per hash bucket")
    args = parser.parse_args()
    rng = random.Random(7)
    docs = [rng.randbytes(args.value_bytes) for _ in range(args.users)]
    buckets = max(1, args.users // args.per_hash)

    def keys(pipeline: redis.client.Pipeline) -> None:
        for number, doc in enumerate(docs):
            pipeline.set(f"p:{{u{number}}}", doc, ex=RETENTION_S)
            if number % PIPELINE == 0:
                pipeline.execute()

    def hashes(pipeline: redis.client.Pipeline) -> None:
        for number, doc in enumerate(docs):
            bucket = f"pb:{{{number % buckets}}}"
            pipeline.hset(bucket, f"u{number}", doc)
            pipeline.expire(bucket, RETENTION_S)
            if number % PIPELINE == 0:
                pipeline.execute()

    with redis_server() as url:
        client = redis.Redis.from_url(url)
        found = {"key": per_user(client, args.users, keys)}
        found["hashtable"] = per_user(client, args.users, hashes)
        encodings = {"hashtable": client.object("encoding", "pb:{0}")}
        client.config_set("hash-max-listpack-value", max(64, args.value_bytes + 64))
        client.config_set("hash-max-listpack-entries", max(128, args.per_hash))
        found["listpack"] = per_user(client, args.users, hashes)
        encodings["listpack"] = client.object("encoding", "pb:{0}")
    reference = found["key"]
    rows = [
        [
            name,
            f"{value:,.0f}",
            f"{value - args.value_bytes:,.0f}",
            f"{value / reference:.2f}",
            (encodings.get(name) or b"string").decode(),
        ]
        for name, value in found.items()
    ]
    print_table(
        f"used_memory per user: {args.users:,} documents of {args.value_bytes} bytes, "
        f"{args.per_hash} users per hash",
        ["layout", "bytes/user", "beyond the document", "ratio to key per user", "encoding"],
        rows,
    )
    print(
        json.dumps(
            {f"{name}_bytes_per_user": round(value, 1) for name, value in found.items()}
            | {"value_bytes": args.value_bytes, "users": args.users, "per_hash": args.per_hash}
        )
    )


if __name__ == "__main__":
    main()
