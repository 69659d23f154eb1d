"""Baseline Kafka <-> WebSocket bridge: the straightforward aiokafka + websockets service, used as a
point of comparison in the kafka-ws-bridge benchmark. See ../README.md.

    python bridge.py --config CONFIG.json

Prints `READY ws://HOST:PORT/` on stdout once the WebSocket server listens and the consumer has
joined its group, got its partitions and resolved their (latest) positions. Logs go to stderr.
"""

import argparse
import asyncio
import json
import logging
import signal
import sys
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("baseline")

RESERVED_HEADERS = {"bridge-user", "bridge-session", "correlation-id"}


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class BadRequest(Exception):
    pass


class UnknownChannel(Exception):
    pass


class Channel:
    def __init__(self, name, topic, by_key):
        self.name = name
        self.topic = topic
        self.by_key = by_key
        self.sockets = set()  # broadcast subscribers
        self.keys = {}  # by_key: key -> set of subscribers

    def receivers(self, key):
        if not self.by_key:
            return self.sockets
        return self.keys.get(key) if key is not None else None

    def add(self, ws, key):
        if self.by_key:
            self.keys.setdefault(key, set()).add(ws)
        else:
            self.sockets.add(ws)

    def remove(self, ws, key):
        if not self.by_key:
            self.sockets.discard(ws)
            return
        sockets = self.keys.get(key)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self.keys[key]


def parse_listen(listen):
    host, sep, port = listen.rpartition(":")
    if not sep:
        raise ValueError(f"listen must be HOST:PORT, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class Bridge:
    def __init__(self, config):
        self.config = config
        self.outbound = {}
        self.channels_by_topic = {}
        for ch in config.get("channels", []):
            if ch["deliver"] not in ("broadcast", "by_key"):
                raise ValueError(f"channel {ch['name']}: deliver must be broadcast or by_key")
            channel = Channel(ch["name"], ch["topic"], ch["deliver"] == "by_key")
            self.outbound[channel.name] = channel
            self.channels_by_topic.setdefault(channel.topic, []).append(channel)
        self.inbound = {ch["channel"]: ch["topic"] for ch in config.get("inbound", [])}
        self.producer = None
        self.consumer = None
        self.pending = set()  # publish tasks waiting for their delivery report

    # ---- Kafka -> WebSocket ---------------------------------------------------------------

    def deliver(self, record):
        channels = self.channels_by_topic.get(record.topic)
        if not channels:
            return
        try:
            data = None if record.value is None else json.loads(record.value)
        except ValueError:
            log.warning("record skipped: value is not JSON (%s/%d@%d)", record.topic, record.partition, record.offset)
            return
        key = None if record.key is None else record.key.decode("utf-8", "replace")
        headers = {
            name: None if value is None else value.decode("utf-8", "replace") for name, value in record.headers
        }
        timestamp = record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None
        for channel in channels:
            sockets = channel.receivers(key)
            if not sockets:
                continue
            frame = {"type": "message", "channel": channel.name}
            if channel.by_key:
                frame["key"] = key
            frame.update(
                data=data,
                partition=record.partition,
                offset=record.offset,
                timestamp=timestamp,
                headers=headers,
            )
            # Encoded once per record and channel; broadcast() writes the same bytes to every
            # open subscriber without waiting on any of them.
            broadcast(sockets, dumps(frame))

    async def consume(self):
        async for record in self.consumer:
            self.deliver(record)

    # ---- WebSocket sessions ---------------------------------------------------------------

    async def session(self, ws):
        session_id = str(uuid.uuid4())
        subscriptions = {}  # (channel name, key) -> Channel
        try:
            await ws.send(dumps({"type": "welcome", "session": session_id, "user": None, "protocol": 1}))
            async for raw in ws:
                await self.on_frame(ws, session_id, subscriptions, raw)
        except ConnectionClosed:
            pass
        finally:
            for (_, key), channel in subscriptions.items():
                channel.remove(ws, key)

    async def on_frame(self, ws, session_id, subscriptions, raw):
        if isinstance(raw, bytes):
            return await self.send_error(ws, None, "bad_request", "binary frames are not supported")
        try:
            msg = json.loads(raw)
        except ValueError as err:
            return await self.send_error(ws, None, "bad_request", f"malformed JSON: {err}")
        if not isinstance(msg, dict):
            return await self.send_error(ws, None, "bad_request", "a frame must be a JSON object")
        raw_id = msg.get("id")
        valid_id = isinstance(raw_id, (str, int, float)) and not isinstance(raw_id, bool)
        req_id = raw_id if valid_id else None
        try:
            if raw_id is not None and not valid_id:
                raise BadRequest("field `id` must be a string or a number")
            kind = field(msg, "type", str)
            if kind in ("subscribe", "unsubscribe"):
                await self.on_subscribe(ws, req_id, msg, subscriptions, kind == "unsubscribe")
            elif kind == "publish":
                await self.on_publish(ws, session_id, req_id, msg)
            elif kind == "ping":
                await ws.send(dumps({"type": "pong", "id": req_id}))
            else:
                raise BadRequest(f"unknown type `{kind}`")
        except BadRequest as err:
            await self.send_error(ws, req_id, "bad_request", str(err))
        except UnknownChannel as err:
            await self.send_error(ws, req_id, "unknown_channel", str(err))

    async def on_subscribe(self, ws, req_id, msg, subscriptions, unsubscribe):
        name = field(msg, "channel", str)
        key = key_field(msg)
        channel = self.outbound.get(name)
        if channel is None:
            hint = " (it is an inbound channel: publish to it)" if name in self.inbound else ""
            raise UnknownChannel(f"no outbound channel `{name}`{hint}")
        if channel.by_key and key is None:
            # The real bridge defaults to the session's user id; baseline sessions are anonymous.
            raise BadRequest(f"channel `{name}` is by_key: `key` is required")
        if not channel.by_key and key is not None:
            raise BadRequest(f"channel `{name}` takes no `key`")
        if unsubscribe:
            subscriptions.pop((name, key), None)
            channel.remove(ws, key)
            answer = {"type": "unsubscribed", "id": req_id, "channel": name}
            if channel.by_key:
                answer["key"] = key
        else:
            subscriptions[(name, key)] = channel
            channel.add(ws, key)
            answer = {"type": "subscribed", "id": req_id, "channel": name}
            if channel.by_key:
                answer["key"] = key
            answer.update(snapshot=None, replayed=0, gap=False)
        await ws.send(dumps(answer))

    async def on_publish(self, ws, session_id, req_id, msg):
        name = field(msg, "channel", str)
        if "data" not in msg:
            raise BadRequest("missing field `data`")
        extra = msg.get("headers") or {}
        if not isinstance(extra, dict):
            raise BadRequest("field `headers` must be an object")
        topic = self.inbound.get(name)
        if topic is None:
            hint = " (it is an outbound channel: subscribe to it)" if name in self.outbound else ""
            raise UnknownChannel(f"no inbound channel `{name}`{hint}")
        headers = []
        for h_name, h_value in extra.items():
            if not isinstance(h_value, str):
                raise BadRequest(f"header `{h_name}` must be a string")
            if h_name in RESERVED_HEADERS:
                raise BadRequest(f"header `{h_name}` is reserved")
            headers.append((h_name, h_value.encode()))
        headers.append(("bridge-session", session_id.encode()))
        if req_id is not None:
            headers.append(("correlation-id", str(req_id).encode()))
        value = dumps(msg["data"]).encode()
        try:
            # send() returns once the record is queued (it waits only if the buffer is full);
            # the ack is sent from a task when the delivery report arrives, so a client can
            # have several publishes in flight.
            delivery = await self.producer.send(topic, value, headers=headers)
        except KafkaError as err:
            return await self.send_error(ws, req_id, "internal", f"kafka: {err}")
        task = asyncio.create_task(self.ack(ws, req_id, topic, delivery))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def ack(self, ws, req_id, topic, delivery):
        try:
            meta = await delivery
        except KafkaError as err:
            code = "unavailable" if err.retriable else "internal"
            return await self.send_error(ws, req_id, code, f"kafka: {err}")
        try:
            await ws.send(
                dumps({"type": "ack", "id": req_id, "topic": topic, "partition": meta.partition, "offset": meta.offset})
            )
        except ConnectionClosed:
            pass

    async def send_error(self, ws, req_id, code, message):
        try:
            await ws.send(dumps({"type": "error", "id": req_id, "code": code, "message": message}))
        except ConnectionClosed:
            pass

    # ---- Lifecycle ------------------------------------------------------------------------

    async def run(self):
        config = self.config
        host, port = parse_listen(config["listen"])
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

        # acks="all" like kafkajs' default (and the real bridge's idempotent producer).
        self.producer = AIOKafkaProducer(bootstrap_servers=config["bootstrap"], client_id="baseline-python", acks="all")
        await self.producer.start()

        consume_task = None
        if self.channels_by_topic:
            assigned = asyncio.Event()

            class Listener(ConsumerRebalanceListener):
                async def on_partitions_revoked(self, revoked):
                    pass

                async def on_partitions_assigned(self, partitions):
                    if partitions:
                        assigned.set()

            self.consumer = AIOKafkaConsumer(
                bootstrap_servers=config["bootstrap"],
                client_id="baseline-python",
                group_id=config["group_id"],
                auto_offset_reset="latest",
                fetch_max_wait_ms=config.get("fetch_max_wait_ms", 100),
            )
            self.consumer.subscribe(list(self.channels_by_topic), listener=Listener())
            await self.consumer.start()
            consume_task = asyncio.create_task(self.consume())
            await wait_or_fail(assigned.wait(), consume_task)
            # The fetcher resolves the "latest" positions in the background; once they are known
            # it is fetching from them, so a record produced after READY is delivered.
            for tp in self.consumer.assignment():
                await wait_or_fail(self.consumer.position(tp), consume_task)

        # compression=None: websockets negotiates permessage-deflate by default (and would then
        # compress every frame once per connection); ws (Node) and the real bridge do not.
        async with serve(self.session, host, port, compression=None) as server:
            bound_port = server.sockets[0].getsockname()[1]
            shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
            if ":" in shown:
                shown = f"[{shown}]"
            print(f"READY ws://{shown}:{bound_port}/", flush=True)

            waiters = [asyncio.create_task(stop.wait())]
            if consume_task is not None:
                waiters.append(consume_task)
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            failed = consume_task is not None and consume_task.done()
            log.info("shutting down")
            server.close()  # closes every connection with 1001 (going away)
            await server.wait_closed()

        if consume_task is not None:
            if failed:
                log.error("consumer stopped: %r", consume_task.exception())
            consume_task.cancel()
            await self.consumer.stop()
        await self.producer.stop()
        return 1 if failed else 0


async def wait_or_fail(awaitable, consume_task):
    """Awaits `awaitable`, unless the consumer task dies first (then raises its exception)."""
    waiter = asyncio.ensure_future(awaitable)
    await asyncio.wait([waiter, consume_task], return_when=asyncio.FIRST_COMPLETED)
    if not waiter.done():
        waiter.cancel()
        consume_task.result()
        raise RuntimeError("consumer stopped")
    return waiter.result()


def field(msg, name, kind):
    if name not in msg:
        raise BadRequest(f"missing field `{name}`")
    value = msg[name]
    if not isinstance(value, kind):
        raise BadRequest(f"field `{name}` must be a {kind.__name__}")
    return value


def key_field(msg):
    key = msg.get("key")
    if key is None or isinstance(key, str):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise BadRequest("field `key` must be a string or an integer")


def main():
    parser = argparse.ArgumentParser(description="Baseline Kafka <-> WebSocket bridge (aiokafka + websockets)")
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    with open(args.config) as f:
        config = json.load(f)
    sys.exit(asyncio.run(Bridge(config).run()))


if __name__ == "__main__":
    main()
