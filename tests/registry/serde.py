"""Confluent's own Schema Registry serializers as a small CLI, for the Schema Registry tests.

Run with the venv of scripts/registry/pyenv.sh (tests/common/registry.rs `serde_py` does):

  serde.py produce --bootstrap B --registry URL --topic T --format avro|protobuf|json_schema
                   --schema FILE [--message NAME] [--key-format string|avro] [--key-schema FILE]
                   [--auto-register true|false] [--partition N]
      Reads JSON lines from stdin, each {"key": ..., "value": ...} (value null: a tombstone;
      key null or absent: no key), serializes the value with Confluent's serializer for the
      format (TopicNameStrategy: subject T-value, T-key), produces, flushes, and prints one
      JSON line per record: {"partition", "offset", "schema_id", "key_schema_id"} (the ids
      read back from the serialized bytes; null for a tombstone or a string key).
      Avro values are JSON as Avro's types read it, with two conveniences: a decimal may be a
      string or a number ("12.34"), a timestamp-millis/micros an integer or an ISO-8601 string;
      a union takes the plain value or Avro's {"branch": value}. Protobuf values are the proto3
      JSON mapping (json_format.ParseDict) of the message --message names (default: the first
      message of the file; a nested one as Outer.Inner), compiled from the .proto at run time.
  serde.py consume --bootstrap B --registry URL --topic T --format avro|protobuf|json_schema
                   --count N [--timeout S] [--key-format string|avro]
      Reads N records from the beginning of every partition with Confluent's deserializer and
      prints each as {"key", "value", "partition", "offset", "schema_id"}. Avro: a decimal as a
      string ("12.34"), a timestamp as epoch milliseconds (micros for timestamp-micros), bytes
      as base64. Protobuf: the message class is built from the writer's schema as the registry
      returns it, and printed with json_format.MessageToDict, field names as in the .proto,
      fields at their default value included (int64 values are strings, per proto3 JSON).
      Exits with 2 and says which record when one cannot be deserialized; with 3 when fewer
      than N arrive within S seconds (default 30).
  serde.py register --registry URL --subject S --format avro|protobuf|json_schema --schema FILE
      Registers the schema (a .proto as its text) and prints {"subject", "id"}.
"""

import argparse
import base64
import datetime
import decimal
import json
import os
import sys
import tempfile
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.serialization import MessageField, SerializationContext, StringDeserializer, StringSerializer

SCHEMA_TYPES = {"avro": "AVRO", "protobuf": "PROTOBUF", "json_schema": "JSON"}
# TopicNameStrategy, as the brief and the bridge assume. Set explicitly: the client's default is
# its "associated" strategy, which asks the registry for topic associations first (an API that
# Confluent's registry has and Apicurio answers with 404).
STRATEGY = {"subject.name.strategy": topic_subject_name_strategy}


def fail(code, message):
    print(f"serde.py: {message}", file=sys.stderr)
    sys.exit(code)


def registry_client(url):
    return RegistryClient({"url": url, "timeout": 10})


class RegistryClient(SchemaRegistryClient):
    """Confluent's client, but for one thing: a Protobuf schema asked for as a serialized
    descriptor (format=serialized, which Confluent's ProtobufDeserializer asks for) that the
    registry does not give is fetched as stored and made one here. Apicurio Registry 3.3.3
    answers format=serialized with a 500 for a schema registered as a base64 descriptor (as
    Confluent's ProtobufSerializer registers them: it parses the base64 as .proto text), and
    with the descriptor's raw bytes as a JSON string, not base64 and so mangled, for one
    registered as .proto text. Stored text that is a base64 descriptor is kept; .proto text is
    compiled with protoc. Said on stderr, once per schema."""

    def get_schema(self, schema_id, subject_name=None, fmt=None, reference_format=None):
        if fmt != "serialized":
            return super().get_schema(schema_id, subject_name, fmt, reference_format)
        cached = self._cache.get_schema_by_id(subject_name, schema_id)
        if cached is not None:
            return cached[1]
        path = f"schemas/ids/{schema_id}"
        query = {"subject": subject_name} if subject_name is not None else {}
        schema = self._serialized(path, query, f"schema {schema_id}")
        self._cache.set_schema(subject_name, schema_id, None, schema)
        return schema

    def get_version(self, subject_name, version="latest", deleted=False, fmt=None):
        if fmt != "serialized":
            return super().get_version(subject_name, version, deleted, fmt)
        from confluent_kafka.schema_registry import RegisteredSchema

        path = f"subjects/{subject_name}/versions/{version}"
        response = self._rest_client.get(path, {"deleted": deleted})
        schema = self._serialized(path, {"deleted": deleted}, f"{subject_name} version {version}")
        return RegisteredSchema(
            schema_id=response["id"],
            guid=response.get("guid"),
            schema=schema,
            subject=response["subject"],
            version=response["version"],
        )

    def _serialized(self, path, query, what):
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            answer = self._rest_client.get(path, dict(query, format="serialized"))
            if is_serialized_descriptor(answer.get("schema", "")):
                return schema_of(answer)
            why = "an answer that is not a base64 FileDescriptorProto"
        except SchemaRegistryError as e:
            why = f"HTTP {e.http_status_code}: {e.error_message[:80]}"
        stored = self._rest_client.get(path, query)
        schema = schema_of(stored)
        if not is_serialized_descriptor(schema.schema_str):
            schema = Schema(proto_text_to_descriptor(schema.schema_str, schema.references, self), "PROTOBUF", schema.references)
        if what not in SAID:
            SAID.add(what)
            print(
                f"serde.py: the registry gave {why} for {what} with format=serialized: used the schema as stored",
                file=sys.stderr,
            )
        return schema


SAID = set()


def schema_of(answer):
    from confluent_kafka.schema_registry import SchemaReference

    references = [SchemaReference(r["name"], r["subject"], r["version"]) for r in answer.get("references") or []]
    return Schema(answer["schema"], answer.get("schemaType", "AVRO"), references)


def is_serialized_descriptor(text):
    """Whether text is a base64 FileDescriptorProto (what format=serialized should give)."""
    from google.protobuf import descriptor_pb2
    from google.protobuf.message import DecodeError

    try:
        data = base64.b64decode(text, validate=True)
        descriptor_pb2.FileDescriptorProto().ParseFromString(data)
    except (ValueError, DecodeError):
        return False
    return bool(data)


def proto_text_to_descriptor(text, references, client):
    """.proto text (its imports: the schema's references, fetched as stored) as a base64
    FileDescriptorProto, compiled with protoc."""
    with tempfile.TemporaryDirectory() as tmp:
        def write(name, content):
            os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
            with open(os.path.join(tmp, name), "w") as f:
                f.write(content)

        def write_references(refs):
            for ref in refs or []:
                if ref.name.startswith("google/protobuf/"):
                    continue
                stored = client._rest_client.get(f"subjects/{ref.subject}/versions/{ref.version}", {})
                write(ref.name, stored["schema"])
                write_references(schema_of(stored).references)

        write_references(references)
        write("schema.proto", text)
        file = compile_proto(os.path.join(tmp, "schema.proto"))
        return base64.b64encode(file.serialized_pb).decode("ascii")


def schema_id_of(data):
    """The schema id of Confluent's framing (magic byte 0, then a 4-byte big-endian id)."""
    if data is None or len(data) < 5 or data[0] != 0:
        return None
    return int.from_bytes(data[1:5], "big")


# ---- Avro: JSON in, JSON out -----------------------------------------------------------------


def avro_from_json(schema, value, named):
    """value, read from JSON, in the Python types fastavro writes for `schema` (parsed)."""
    if isinstance(schema, str):
        schema = named.get(schema, schema)
    if isinstance(schema, list):
        if isinstance(value, dict) and len(value) == 1:
            (branch, inner), = value.items()
            for candidate in schema:
                if avro_name(candidate) == branch or avro_name(candidate).split(".")[-1] == branch:
                    return avro_from_json(candidate, inner, named)
        for candidate in schema:
            if avro_name(candidate) == "null":
                if value is None:
                    return None
                continue
            try:
                return avro_from_json(candidate, value, named)
            except (TypeError, ValueError, decimal.InvalidOperation, AttributeError):
                continue
        return value
    if not isinstance(schema, dict):
        return value
    logical = schema.get("logicalType")
    kind = schema.get("type")
    if logical == "decimal" and value is not None:
        if isinstance(value, float):
            value = repr(value)
        return decimal.Decimal(str(value)).quantize(decimal.Decimal(1).scaleb(-schema.get("scale", 0)))
    if logical in ("timestamp-millis", "timestamp-micros") and isinstance(value, str):
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if logical == "date" and isinstance(value, str):
        return datetime.date.fromisoformat(value)
    if logical == "uuid" and isinstance(value, str):
        return value
    if kind == "record":
        named[schema["name"]] = schema
        if not isinstance(value, dict):
            raise TypeError(f"{schema['name']}: expected an object, got {value!r}")
        return {
            field["name"]: avro_from_json(field["type"], value[field["name"]], named)
            for field in schema["fields"]
            if field["name"] in value
        }
    if kind in ("enum", "fixed"):
        named[schema["name"]] = schema
        if kind == "fixed" and isinstance(value, str):
            return base64.b64decode(value)
        return value
    if kind == "array":
        return [avro_from_json(schema["items"], v, named) for v in value]
    if kind == "map":
        return {k: avro_from_json(schema["values"], v, named) for k, v in value.items()}
    if kind == "bytes" and isinstance(value, str):
        return base64.b64decode(value)
    if kind in ("long", "int") and isinstance(value, str):
        return int(value)
    return value


def avro_name(schema):
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict):
        return schema.get("name") or schema.get("type")
    return "union"


def to_json(value):
    """A deserialized value as JSON: see the module's doc for the logical types."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return round(value.timestamp() * 1000)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.time):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


# ---- Protobuf: .proto compiled at run time -----------------------------------------------------


def compile_proto(path):
    """The FileDescriptor of a .proto file, compiled with grpcio-tools' protoc (its imports from
    the file's directory and the well-known types), in a pool of its own."""
    from google.protobuf import descriptor_pb2, descriptor_pool
    from grpc_tools import protoc
    import importlib.resources

    path = os.path.abspath(path)
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        status = protoc.main(
            [
                "protoc",
                f"-I{os.path.dirname(path)}",
                f"-I{well_known}",
                f"--descriptor_set_out={out}",
                "--include_imports",
                path,
            ]
        )
        if status != 0:
            fail(1, f"protoc could not compile {path} (its errors are above)")
        files = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            files.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:  # dependencies first, as protoc writes them
        pool.Add(file)
    return pool.FindFileByName(os.path.basename(path))


def message_class(file, name):
    """The class of message `name` (Outer or Outer.Inner) of a FileDescriptor; the first
    top-level message without a name."""
    from google.protobuf.message_factory import GetMessageClass

    if not file.message_types_by_name:
        fail(1, f"{file.name} has no message")
    if name is None:
        return GetMessageClass(list(file.message_types_by_name.values())[0])
    full = f"{file.package}.{name}" if file.package else name
    try:
        return GetMessageClass(file.pool.FindMessageTypeByName(full))
    except KeyError:
        fail(1, f"{file.name} has no message {name}")


def proto_to_json(message):
    from google.protobuf import json_format

    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


class ProtobufFromRegistry:
    """Confluent's ProtobufDeserializer for whatever message each record holds: the writer's
    schema (as the registry returns it, format=serialized) and the record's message indexes give
    the message type, and one deserializer per type does the rest."""

    def __init__(self, client):
        self.client = client
        self.deserializers = {}

    def __call__(self, data, ctx):
        # The client's own helpers (private, but the version is pinned): the framing, and the
        # pool a schema and its references make.
        from confluent_kafka.schema_registry import dual_schema_id_deserializer
        from confluent_kafka.schema_registry._sync.protobuf import _resolve_named_schema
        from confluent_kafka.schema_registry.common.protobuf import _init_pool, _str_to_proto
        from confluent_kafka.schema_registry.common.serde import SchemaId
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
        from google.protobuf.descriptor_pool import DescriptorPool
        from google.protobuf.message_factory import GetMessageClass

        if data is None:
            return None
        schema_id = SchemaId("PROTOBUF")
        dual_schema_id_deserializer(data, ctx, schema_id)
        indexes = tuple(schema_id.message_indexes or [0])
        key = (schema_id.id, schema_id.guid, indexes)
        if key not in self.deserializers:
            schema = self.client.get_schema(schema_id.id, None, "serialized")
            pool = DescriptorPool()
            _init_pool(pool)
            _resolve_named_schema(schema, self.client, pool)
            file_proto = _str_to_proto("default", schema.schema_str)
            pool.Add(file_proto)
            file = pool.FindFileByName(file_proto.name)
            desc = file.message_types_by_name[list(file.message_types_by_name)[indexes[0]]]
            for index in indexes[1:]:
                desc = desc.nested_types[index]
            self.deserializers[key] = ProtobufDeserializer(GetMessageClass(desc), dict(STRATEGY), self.client)
        return self.deserializers[key](data, ctx)


# ---- serializers -------------------------------------------------------------------------------


def read_text(path):
    with open(path) as f:
        return f.read()


def value_serializer(args, client):
    """(serialize(value, ctx), converts JSON to what the serializer takes)."""
    conf = dict(STRATEGY, **{"auto.register.schemas": args.auto_register})
    if args.format == "avro":
        from confluent_kafka.schema_registry.avro import AvroSerializer
        from fastavro import parse_schema

        text = read_text(args.schema)
        parsed = parse_schema(json.loads(text))
        return AvroSerializer(client, text, conf=conf), lambda v: avro_from_json(parsed, v, {})
    if args.format == "json_schema":
        from confluent_kafka.schema_registry.json_schema import JSONSerializer

        return JSONSerializer(read_text(args.schema), client, conf=conf), lambda v: v
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
    from google.protobuf import json_format

    cls = message_class(compile_proto(args.schema), args.message)
    return ProtobufSerializer(cls, client, conf=conf), lambda v: json_format.ParseDict(v, cls())


def key_serializer(args, client):
    if args.key_format == "string":
        serialize = StringSerializer("utf_8")
        return serialize, lambda k: k if isinstance(k, str) else json.dumps(k)
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from fastavro import parse_schema

    if not args.key_schema:
        fail(1, "--key-format avro needs --key-schema FILE")
    text = read_text(args.key_schema)
    parsed = parse_schema(json.loads(text))
    conf = dict(STRATEGY, **{"auto.register.schemas": args.auto_register})
    return AvroSerializer(client, text, conf=conf), lambda k: avro_from_json(parsed, k, {})


def value_deserializer(args, client):
    if args.format == "avro":
        from confluent_kafka.schema_registry.avro import AvroDeserializer

        return AvroDeserializer(client, conf=dict(STRATEGY)), to_json
    if args.format == "json_schema":
        from confluent_kafka.schema_registry.json_schema import JSONDeserializer

        return JSONDeserializer(None, schema_registry_client=client, conf=dict(STRATEGY)), to_json
    return ProtobufFromRegistry(client), proto_to_json


def key_deserializer(args, client):
    if args.key_format == "string":
        return StringDeserializer("utf_8"), lambda k: k
    from confluent_kafka.schema_registry.avro import AvroDeserializer

    return AvroDeserializer(client, conf=dict(STRATEGY)), to_json


# ---- commands ----------------------------------------------------------------------------------


def produce(args):
    client = registry_client(args.registry)
    serialize_value, value_in = value_serializer(args, client)
    serialize_key, key_in = key_serializer(args, client)
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 1})
    results = []

    def delivered(err, msg, at):
        if err is not None:
            fail(1, f"record {at}: not produced: {err}")
        results[at].update(partition=msg.partition(), offset=msg.offset())

    for n, line in enumerate(line for line in sys.stdin if line.strip()):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            fail(1, f"input line {n + 1} is not JSON: {e}")
        key, value = record.get("key"), record.get("value")
        value_ctx = SerializationContext(args.topic, MessageField.VALUE)
        key_ctx = SerializationContext(args.topic, MessageField.KEY)
        try:
            value_bytes = None if value is None else serialize_value(value_in(value), value_ctx)
            key_bytes = None if key is None else serialize_key(key_in(key), key_ctx)
        except Exception as e:  # noqa: BLE001 - any serializer error ends the run, named
            fail(1, f"input line {n + 1}: cannot serialize: {type(e).__name__}: {e}")
        results.append(
            {
                "schema_id": schema_id_of(value_bytes),
                "key_schema_id": schema_id_of(key_bytes) if args.key_format != "string" else None,
            }
        )
        extra = {} if args.partition is None else {"partition": args.partition}
        producer.produce(
            args.topic,
            value=value_bytes,
            key=key_bytes,
            on_delivery=lambda err, msg, at=n: delivered(err, msg, at),
            **extra,
        )
        producer.poll(0)
    left = producer.flush(30)
    if left:
        fail(1, f"{left} records not delivered within 30 s")
    for result in results:
        print(json.dumps({k: result.get(k) for k in ("partition", "offset", "schema_id", "key_schema_id")}))


def consume(args):
    client = registry_client(args.registry)
    deserialize_value, value_out = value_deserializer(args, client)
    deserialize_key, key_out = key_deserializer(args, client)
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"serde-py-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    deadline = time.monotonic() + args.timeout
    # Every partition from its beginning, assigned (no group join to wait for).
    metadata = consumer.list_topics(args.topic, timeout=max(1.0, deadline - time.monotonic()))
    topic = metadata.topics.get(args.topic)
    if topic is None or topic.error is not None or not topic.partitions:
        fail(1, f"topic {args.topic}: {topic.error if topic else 'not found'}")
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in sorted(topic.partitions)])
    read = 0
    try:
        while read < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(3, f"read {read} of {args.count} records from {args.topic} within {args.timeout} s")
            msg = consumer.poll(min(left, 1.0))
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                continue
            where = f"partition {msg.partition()} offset {msg.offset()}"
            try:
                value = deserialize_value(msg.value(), SerializationContext(args.topic, MessageField.VALUE))
            except Exception as e:  # noqa: BLE001 - any deserializer error ends the run, named
                fail(2, f"{args.topic} {where}: cannot deserialize the value: {type(e).__name__}: {e}")
            try:
                key = deserialize_key(msg.key(), SerializationContext(args.topic, MessageField.KEY))
            except Exception as e:  # noqa: BLE001
                fail(2, f"{args.topic} {where}: cannot deserialize the key: {type(e).__name__}: {e}")
            print(
                json.dumps(
                    {
                        "key": None if key is None else key_out(key),
                        "value": None if value is None else value_out(value),
                        "partition": msg.partition(),
                        "offset": msg.offset(),
                        "schema_id": schema_id_of(msg.value()),
                    }
                ),
                flush=True,
            )
            read += 1
    finally:
        consumer.close()


def register(args):
    client = registry_client(args.registry)
    schema = Schema(read_text(args.schema), SCHEMA_TYPES[args.format])
    schema_id = client.register_schema(args.subject, schema)
    print(json.dumps({"subject": args.subject, "id": schema_id}))


def boolean(text):
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    formats = list(SCHEMA_TYPES)

    p = commands.add_parser("produce")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--format", required=True, choices=formats)
    p.add_argument("--schema", required=True)
    p.add_argument("--message", help="protobuf: the message type (default: the file's first)")
    p.add_argument("--key-format", default="string", choices=["string", "avro"])
    p.add_argument("--key-schema")
    p.add_argument("--auto-register", type=boolean, default=True)
    p.add_argument("--partition", type=int)
    p.set_defaults(run=produce)

    c = commands.add_parser("consume")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--registry", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--format", required=True, choices=formats)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--timeout", type=float, default=30.0)
    c.add_argument("--key-format", default="string", choices=["string", "avro"])
    c.set_defaults(run=consume)

    r = commands.add_parser("register")
    r.add_argument("--registry", required=True)
    r.add_argument("--subject", required=True)
    r.add_argument("--format", required=True, choices=formats)
    r.add_argument("--schema", required=True)
    r.set_defaults(run=register)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
