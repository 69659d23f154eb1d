// Baseline Kafka <-> WebSocket bridge: the straightforward kafkajs + ws service, used as a
// point of comparison in the kafka-ws-bridge benchmark. See ../README.md.
//
//   node bridge.mjs --config CONFIG.json
//
// Prints `READY ws://HOST:PORT/` on stdout once the WebSocket server listens and the consumer
// has joined its group, got its partitions and completed its first fetch. Logs go to stderr.

import { readFileSync } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { Kafka, Partitioners, logLevel } from 'kafkajs'
import { WebSocketServer, WebSocket } from 'ws'

const RESERVED_HEADERS = new Set(['bridge-user', 'bridge-session', 'correlation-id'])

function log(message, fields = {}) {
  process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), message, ...fields }) + '\n')
}

function parseArgs(argv) {
  const i = argv.indexOf('--config')
  if (i < 0 || i + 1 >= argv.length) {
    process.stderr.write('usage: node bridge.mjs --config CONFIG.json\n')
    process.exit(2)
  }
  return argv[i + 1]
}

// "127.0.0.1:8090" or "[::1]:0" -> { host, port }
function parseListen(listen) {
  const colon = listen.lastIndexOf(':')
  if (colon < 0) throw new Error(`listen must be HOST:PORT, got ${JSON.stringify(listen)}`)
  let host = listen.slice(0, colon)
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1)
  const port = Number(listen.slice(colon + 1))
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port in ${listen}`)
  return { host, port }
}

function loadConfig(path) {
  const config = JSON.parse(readFileSync(path, 'utf8'))
  for (const field of ['bootstrap', 'listen', 'group_id']) {
    if (typeof config[field] !== 'string') throw new Error(`config: "${field}" must be a string`)
  }
  config.fetch_max_wait_ms ??= 100
  config.channels ??= []
  config.inbound ??= []
  for (const ch of config.channels) {
    if (ch.deliver !== 'broadcast' && ch.deliver !== 'by_key') {
      throw new Error(`config: channel ${ch.name}: deliver must be "broadcast" or "by_key"`)
    }
  }
  return config
}

const config = loadConfig(parseArgs(process.argv.slice(2)))
const { host, port } = parseListen(config.listen)

// ---- Routing state -------------------------------------------------------------------------

// name -> { name, topic, byKey, sockets: Set<ws> (broadcast), keys: Map<key, Set<ws>> (by_key) }
const outbound = new Map()
// topic -> [outbound channel] (several channels may read the same topic)
const channelsByTopic = new Map()
for (const ch of config.channels) {
  const channel = {
    name: ch.name,
    topic: ch.topic,
    byKey: ch.deliver === 'by_key',
    sockets: new Set(),
    keys: new Map(),
  }
  outbound.set(ch.name, channel)
  if (!channelsByTopic.has(ch.topic)) channelsByTopic.set(ch.topic, [])
  channelsByTopic.get(ch.topic).push(channel)
}
// name -> topic
const inbound = new Map(config.inbound.map((ch) => [ch.channel, ch.topic]))

function receivers(channel, key) {
  if (!channel.byKey) return channel.sockets
  return key === null ? undefined : channel.keys.get(key)
}

function addSubscription(ws, channel, key) {
  let set = channel.sockets
  if (channel.byKey) {
    set = channel.keys.get(key)
    if (!set) channel.keys.set(key, (set = new Set()))
  }
  set.add(ws)
  ws.subscriptions.set(`${channel.name}\u0000${key ?? ''}`, { channel, key })
}

function removeSubscription(ws, channel, key) {
  ws.subscriptions.delete(`${channel.name}\u0000${key ?? ''}`)
  if (!channel.byKey) {
    channel.sockets.delete(ws)
    return
  }
  const set = channel.keys.get(key)
  if (set) {
    set.delete(ws)
    if (set.size === 0) channel.keys.delete(key)
  }
}

// ---- Kafka ---------------------------------------------------------------------------------

const toStderr = () => ({ namespace, label, log: entry }) => {
  const { message, timestamp, logger, ...rest } = entry
  process.stderr.write(JSON.stringify({ ts: timestamp, level: label, namespace, message, ...rest }) + '\n')
}

const kafka = new Kafka({
  clientId: 'baseline-node',
  brokers: config.bootstrap.split(','),
  logLevel: logLevel.WARN,
  logCreator: toStderr,
})

const consumer = kafka.consumer({
  groupId: config.group_id,
  maxWaitTimeInMs: config.fetch_max_wait_ms,
})

const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })

function headersToJson(headers) {
  const out = {}
  for (const [name, value] of Object.entries(headers ?? {})) {
    const last = Array.isArray(value) ? value[value.length - 1] : value
    out[name] = last == null ? null : last.toString('utf8')
  }
  return out
}

function deliverRecord(topic, partition, message) {
  const channels = channelsByTopic.get(topic)
  if (!channels) return
  let data = null
  if (message.value !== null) {
    try {
      data = JSON.parse(message.value.toString('utf8'))
    } catch (err) {
      log('record skipped: value is not JSON', { topic, partition, offset: message.offset })
      return
    }
  }
  const key = message.key === null ? null : message.key.toString('utf8')
  const offset = Number(message.offset)
  const ts = Number(message.timestamp)
  const timestamp = Number.isFinite(ts) && ts >= 0 ? ts : null
  const headers = headersToJson(message.headers)

  for (const channel of channels) {
    const sockets = receivers(channel, key)
    if (!sockets || sockets.size === 0) continue
    // Encoded once per record and channel; the same string goes to every receiving socket.
    const frame = JSON.stringify(
      channel.byKey
        ? { type: 'message', channel: channel.name, key, data, partition, offset, timestamp, headers }
        : { type: 'message', channel: channel.name, data, partition, offset, timestamp, headers },
    )
    for (const ws of sockets) {
      if (ws.readyState === WebSocket.OPEN) ws.send(frame)
    }
  }
}

// ---- WebSocket sessions --------------------------------------------------------------------

function sendJson(ws, object) {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(object))
}

function sendError(ws, id, code, message) {
  sendJson(ws, { type: 'error', id, code, message })
}

class BadRequest extends Error {}

function field(msg, name, types, required = true) {
  const value = msg[name]
  if (value === undefined) {
    if (required) throw new BadRequest(`missing field \`${name}\``)
    return undefined
  }
  if (!types.includes(typeof value) || value === null) {
    throw new BadRequest(`field \`${name}\` must be a ${types.join(' or ')}`)
  }
  return value
}

function keyField(msg) {
  const key = msg.key
  if (key === undefined) return undefined
  if (typeof key === 'string') return key
  if (Number.isInteger(key)) return String(key)
  throw new BadRequest('field `key` must be a string or an integer')
}

function findOutbound(ws, id, name) {
  const channel = outbound.get(name)
  if (!channel) {
    const hint = inbound.has(name) ? ' (it is an inbound channel: publish to it)' : ''
    sendError(ws, id, 'unknown_channel', `no outbound channel \`${name}\`${hint}`)
  }
  return channel
}

function onSubscribe(ws, id, msg, unsubscribe) {
  const name = field(msg, 'channel', ['string'])
  let key = keyField(msg)
  const channel = findOutbound(ws, id, name)
  if (!channel) return
  if (channel.byKey && key === undefined) {
    // The real bridge defaults to the session's user id; baseline sessions are anonymous.
    throw new BadRequest(`channel \`${name}\` is by_key: \`key\` is required`)
  }
  if (!channel.byKey && key !== undefined) {
    throw new BadRequest(`channel \`${name}\` takes no \`key\``)
  }
  key = key ?? null
  if (unsubscribe) {
    removeSubscription(ws, channel, key)
  } else {
    addSubscription(ws, channel, key)
  }
  const type = unsubscribe ? 'unsubscribed' : 'subscribed'
  const answer = channel.byKey ? { type, id, channel: name, key } : { type, id, channel: name }
  if (!unsubscribe) Object.assign(answer, { snapshot: null, replayed: 0, gap: false })
  sendJson(ws, answer)
}

function onPublish(ws, id, msg) {
  const name = field(msg, 'channel', ['string'])
  if (!('data' in msg)) throw new BadRequest('missing field `data`')
  const extra = field(msg, 'headers', ['object'], false) ?? {}
  const topic = inbound.get(name)
  if (topic === undefined) {
    const hint = outbound.has(name) ? ' (it is an outbound channel: subscribe to it)' : ''
    sendError(ws, id, 'unknown_channel', `no inbound channel \`${name}\`${hint}`)
    return
  }
  const headers = {}
  for (const [hName, hValue] of Object.entries(extra)) {
    if (typeof hValue !== 'string') throw new BadRequest(`header \`${hName}\` must be a string`)
    if (RESERVED_HEADERS.has(hName)) throw new BadRequest(`header \`${hName}\` is reserved`)
    headers[hName] = hValue
  }
  headers['bridge-session'] = ws.session
  if (id !== null) headers['correlation-id'] = String(id)

  producer
    .send({ topic, messages: [{ value: JSON.stringify(msg.data), headers }] })
    .then(([meta]) => {
      sendJson(ws, { type: 'ack', id, topic, partition: meta.partition, offset: Number(meta.baseOffset) })
    })
    .catch((err) => {
      sendError(ws, id, err.retriable ? 'unavailable' : 'internal', `kafka: ${err.message}`)
    })
}

function onFrame(ws, raw, isBinary) {
  if (isBinary) {
    sendError(ws, null, 'bad_request', 'binary frames are not supported')
    return
  }
  let msg
  try {
    msg = JSON.parse(raw.toString('utf8'))
  } catch (err) {
    sendError(ws, null, 'bad_request', `malformed JSON: ${err.message}`)
    return
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    sendError(ws, null, 'bad_request', 'a frame must be a JSON object')
    return
  }
  const id = typeof msg.id === 'string' || typeof msg.id === 'number' ? msg.id : null
  try {
    if (msg.id !== undefined && id === null) throw new BadRequest('field `id` must be a string or a number')
    switch (field(msg, 'type', ['string'])) {
      case 'subscribe':
        return onSubscribe(ws, id, msg, false)
      case 'unsubscribe':
        return onSubscribe(ws, id, msg, true)
      case 'publish':
        return onPublish(ws, id, msg)
      case 'ping':
        return sendJson(ws, { type: 'pong', id })
      default:
        throw new BadRequest(`unknown type \`${msg.type}\``)
    }
  } catch (err) {
    if (!(err instanceof BadRequest)) throw err
    sendError(ws, id, 'bad_request', err.message)
  }
}

const wss = new WebSocketServer({ host, port })

wss.on('connection', (ws) => {
  ws.session = randomUUID()
  ws.subscriptions = new Map()
  ws.on('message', (data, isBinary) => onFrame(ws, data, isBinary))
  ws.on('close', () => {
    for (const { channel, key } of [...ws.subscriptions.values()]) removeSubscription(ws, channel, key)
  })
  ws.on('error', (err) => log('websocket error', { session: ws.session, error: err.message }))
  sendJson(ws, { type: 'welcome', session: ws.session, user: null, protocol: 1 })
})

// ---- Startup, READY and shutdown -----------------------------------------------------------

const listening = new Promise((resolve, reject) => {
  wss.once('listening', resolve)
  wss.once('error', reject)
})

// READY needs a group join with partitions, then a completed fetch (kafkajs resolves the
// "latest" offsets inside its first fetch, so a record produced after READY is delivered).
const consuming = new Promise((resolve) => {
  let joined = false
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    joined = Object.values(payload.memberAssignment).some((partitions) => partitions.length > 0)
  })
  consumer.on(consumer.events.FETCH, () => {
    if (joined) resolve()
  })
})

let stopping = false
async function shutdown(signal) {
  if (stopping) return
  stopping = true
  log('shutting down', { signal })
  setTimeout(() => process.exit(1), 10_000).unref()
  for (const ws of wss.clients) ws.close(1001, 'shutting down')
  wss.close()
  await Promise.allSettled([consumer.disconnect(), producer.disconnect()])
  process.exit(0)
}
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))

consumer.on(consumer.events.CRASH, ({ payload }) => {
  log('consumer crashed', { error: payload.error?.message, restart: payload.restart })
})

try {
  await producer.connect()
  if (channelsByTopic.size > 0) {
    await consumer.connect()
    await consumer.subscribe({ topics: [...channelsByTopic.keys()], fromBeginning: false })
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => deliverRecord(topic, partition, message),
    })
    await consuming
  }
  await listening
} catch (err) {
  log('startup failed', { error: err.message })
  process.exit(1)
}

const shownHost = host === '' || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host
const shown = shownHost.includes(':') ? `[${shownHost}]` : shownHost
process.stdout.write(`READY ws://${shown}:${wss.address().port}/\n`)
