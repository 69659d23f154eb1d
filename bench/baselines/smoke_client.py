"""Smoke check of one running baseline bridge (see smoke.sh).

    python smoke_client.py create-topics --bootstrap HOST:PORT T1 T2 T3
    python smoke_client.py check --url ws://127.0.0.1:PORT/ --bootstrap HOST:PORT \
        --fanout-topic T1 --keyed-topic T2 --commands-topic T3

`create-topics` creates topics (3 partitions, replication 1) with the Kafka admin API, so it
works against Tansu (which does not auto-create topics) and any other cluster alike.

The bridge must serve channels `fanout` (broadcast, T1), `keyed` (by_key, T2) and the inbound
channel `commands` (T3). Checks, with the `websockets` client and aiokafka for the Kafka side:
  * every session starts with `welcome`;
  * two broadcast subscribers both get a produced record as a `message` frame whose data,
    partition, offset, timestamp and headers match the record;
  * a by_key subscriber gets only its key's records (records of another key are produced around
    it), with `key` set;
  * a publish gets an `ack` only after the produce, and the record at the acked topic/partition/
    offset has the published data as value, no key and `correlation-id` = the publish id;
  * an unknown channel gets `unknown_channel`, malformed JSON gets `bad_request`.
Exits 0 when all pass, 1 otherwise.
"""

import argparse
import asyncio
import json
import sys
import time
import uuid
from types import SimpleNamespace

import websockets
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

TIMEOUT = 15.0
QUIET = 1.5  # how long a by_key subscriber is watched for records of other keys


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


async def recv_json(ws, timeout=TIMEOUT):
    raw = await asyncio.wait_for(ws.recv(), timeout)
    check(isinstance(raw, str), f"expected a text frame, got {raw!r}")
    return json.loads(raw)


async def recv_type(ws, kind, timeout=TIMEOUT):
    """The next frame, which must be of type `kind`."""
    frame = await recv_json(ws, timeout)
    check(frame.get("type") == kind, f"expected a {kind!r} frame, got {frame}")
    return frame


async def connect(url):
    ws = await websockets.connect(url, max_size=None)
    welcome = await recv_type(ws, "welcome")
    check(isinstance(welcome.get("session"), str) and welcome["session"], f"welcome without session: {welcome}")
    check(welcome.get("user") is None and welcome.get("protocol") == 1, f"bad welcome: {welcome}")
    return ws


async def subscribe(ws, sub_id, channel, key=None):
    request = {"type": "subscribe", "id": sub_id, "channel": channel}
    if key is not None:
        request["key"] = key
    await ws.send(json.dumps(request))
    answer = await recv_type(ws, "subscribed")
    expected = {"type": "subscribed", "id": sub_id, "channel": channel, "snapshot": None, "replayed": 0, "gap": False}
    if key is not None:
        expected["key"] = key
    check(answer == expected, f"subscribe answer {answer}, expected {expected}")


def expect_message(frame, channel, record, value, key=None):
    expected = {
        "type": "message",
        "channel": channel,
        "data": value,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "headers": {"smoke": "yes"},
    }
    if key is not None:
        expected["key"] = key
    check(frame == expected, f"message frame {frame}, expected {expected}")


async def run(args):
    nonce = uuid.uuid4().hex[:8]
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    await producer.start()
    sockets = []
    try:
        fan1, fan2, keyed, other = [await connect(args.url) for _ in range(4)]
        sockets = [fan1, fan2, keyed, other]
        await subscribe(fan1, "s1", "fanout")
        await subscribe(fan2, 7, "fanout")
        await subscribe(keyed, "s3", "keyed", key=f"K-{nonce}")
        print("ok   welcome + subscribed (broadcast x2, by_key)")

        async def produce(topic, value, key=None):
            ts = int(time.time() * 1000) - 5000  # explicit CreateTime, distinguishable from "now"
            return await producer.send_and_wait(
                topic,
                json.dumps(value).encode(),
                key=None if key is None else key.encode(),
                headers=[("smoke", b"yes")],
                timestamp_ms=ts,
            ), ts

        # Broadcast: both subscribers get the record.
        value = {"kind": "fanout", "nonce": nonce, "nested": {"list": [1, 2.5, "x", None, True]}}
        meta, ts = await produce(args.fanout_topic, value)
        record = SimpleNamespace(partition=meta.partition, offset=meta.offset, timestamp=ts)
        for ws in (fan1, fan2):
            expect_message(await recv_type(ws, "message"), "fanout", record, value)
        print(f"ok   broadcast: both subscribers got partition {meta.partition} offset {meta.offset}")

        # by_key: records of another key around the subscribed key's record are not delivered.
        mine, theirs = f"K-{nonce}", f"K-other-{nonce}"
        await produce(args.keyed_topic, {"for": theirs, "i": 0}, key=theirs)
        mine_value = {"for": mine, "i": 1}
        meta, ts = await produce(args.keyed_topic, mine_value, key=mine)
        await produce(args.keyed_topic, {"for": theirs, "i": 2}, key=theirs)
        mine_record = SimpleNamespace(partition=meta.partition, offset=meta.offset, timestamp=ts)
        expect_message(await recv_type(keyed, "message"), "keyed", mine_record, mine_value, key=mine)
        try:
            extra = await recv_json(keyed, QUIET)
            raise Failure(f"by_key subscriber got a frame it should not have: {extra}")
        except asyncio.TimeoutError:
            pass
        print(f"ok   by_key: only key {mine} delivered (partition {meta.partition} offset {meta.offset})")

        # Sessions without a subscription to the channel got nothing.
        try:
            extra = await recv_json(other, 0.2)
            raise Failure(f"unsubscribed session got {extra}")
        except asyncio.TimeoutError:
            pass

        # Publish: ack, then the record is in Kafka at the acked partition and offset.
        pub_id = f"p-{nonce}"
        data = {"op": "Smoke", "nonce": nonce, "n": [1, 2, 3]}
        await other.send(json.dumps({"type": "publish", "id": pub_id, "channel": "commands", "data": data}))
        ack = await recv_type(other, "ack")
        check(ack.get("id") == pub_id and ack.get("topic") == args.commands_topic, f"bad ack {ack}")
        check(isinstance(ack.get("partition"), int) and isinstance(ack.get("offset"), int), f"bad ack {ack}")
        record = await read_record(args.bootstrap, args.commands_topic, ack["partition"], ack["offset"])
        check(record.offset == ack["offset"], f"record at offset {record.offset}, ack says {ack['offset']}")
        check(json.loads(record.value) == data, f"record value {record.value!r}, published {data}")
        check(record.key is None, f"record key {record.key!r}, expected none")
        headers = dict(record.headers)
        check(headers.get("correlation-id") == pub_id.encode(), f"record headers {record.headers}")
        print(f"ok   publish: ack partition {ack['partition']} offset {ack['offset']} matches the record in Kafka")

        # Errors.
        await other.send(json.dumps({"type": "subscribe", "id": "e1", "channel": "nope"}))
        err = await recv_type(other, "error")
        check(err.get("id") == "e1" and err.get("code") == "unknown_channel", f"bad error {err}")
        await other.send(json.dumps({"type": "publish", "id": "e2", "channel": "nope", "data": 1}))
        err = await recv_type(other, "error")
        check(err.get("id") == "e2" and err.get("code") == "unknown_channel", f"bad error {err}")
        await other.send("{not json")
        err = await recv_type(other, "error")
        check(err.get("code") == "bad_request", f"bad error {err}")
        print("ok   errors: unknown_channel, bad_request")

        # Closing a subscriber drops its subscriptions; the others keep receiving.
        await fan1.close()
        value = {"kind": "fanout", "nonce": nonce, "after_close": True}
        meta, ts = await produce(args.fanout_topic, value)
        record = SimpleNamespace(partition=meta.partition, offset=meta.offset, timestamp=ts)
        expect_message(await recv_type(fan2, "message"), "fanout", record, value)
        print("ok   a closed subscriber's socket is dropped; the other still receives")
    finally:
        for ws in sockets:
            await ws.close()
        await producer.stop()


async def read_record(bootstrap, topic, partition, offset):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        try:
            return await asyncio.wait_for(consumer.getone(tp), TIMEOUT)
        except asyncio.TimeoutError:
            raise Failure(f"no record in Kafka at {topic}/{partition} offset {offset}") from None
    finally:
        await consumer.stop()


async def create_topics(bootstrap, topics, partitions):
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
        failed = [(t, code, msg) for t, code, msg in response.topic_errors if code != 0]
        if failed:
            raise Failure(f"create_topics failed: {failed}")
    finally:
        await admin.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-topics", help="create topics")
    create.add_argument("--bootstrap", required=True)
    create.add_argument("--partitions", type=int, default=3)
    create.add_argument("topics", nargs="+")
    run_check = commands.add_parser("check", help="check a running bridge")
    run_check.add_argument("--url", required=True)
    run_check.add_argument("--bootstrap", required=True)
    run_check.add_argument("--fanout-topic", required=True)
    run_check.add_argument("--keyed-topic", required=True)
    run_check.add_argument("--commands-topic", required=True)
    args = parser.parse_args()
    try:
        if args.command == "create-topics":
            asyncio.run(create_topics(args.bootstrap, args.topics, args.partitions))
            return
        asyncio.run(run(args))
    except (Failure, asyncio.TimeoutError, websockets.ConnectionClosed) as err:
        kind = "timed out waiting for a frame" if isinstance(err, asyncio.TimeoutError) else str(err)
        print(f"FAIL {kind}", file=sys.stderr)
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
