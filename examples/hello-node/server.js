// hello-node: a dependency-free Vango-style app for Rhone. It listens on $PORT (default 8080),
// answers GET /health, shows its release on GET /, reports it on GET /release, and keeps a
// WebSocket at /_vango/ws (RFC 6455, written by hand on node:http + node:crypto). On SIGTERM it
// stops accepting, fails /health, tells every client to reconnect, closes them with 1012
// (service restart), waits up to 5 s for them to go, and exits 0.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PORT = Number(process.env.PORT || 8080);
const DRAIN_MS = 5000;
const MAX_MESSAGE = 16 * 1024 * 1024;
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };

function readRelease() {
  if (process.env.RHONE_RELEASE) return process.env.RHONE_RELEASE;
  try {
    const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'RELEASE');
    const text = readFileSync(file, 'utf8').trim();
    if (text) return text;
  } catch {
    // no RELEASE file: fall through
  }
  return 'dev';
}

const RELEASE = readRelease();
const HOSTNAME = os.hostname();
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const connections = new Set(); // open WebSockets
let draining = false;

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const page = () => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hello-node ${escapeHtml(RELEASE)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em}
code{background:#eee;padding:0 .3em}#log{font:13px ui-monospace,monospace;color:#333}</style></head>
<body><h1>hello-node</h1>
<p>Release <code id="release">${escapeHtml(RELEASE)}</code> on <code>${escapeHtml(HOSTNAME)}</code>, pid <code>${process.pid}</code>.</p>
<p>WebSocket: <span id="state">connecting…</span></p><ul id="log"></ul>
<script>
var log = document.getElementById('log'), state = document.getElementById('state');
function line(text) {
  var li = document.createElement('li');
  li.textContent = new Date().toLocaleTimeString() + '  ' + text;
  log.insertBefore(li, log.firstChild);
  while (log.children.length > 15) log.removeChild(log.lastChild);
}
function connect() {
  var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/_vango/ws');
  var timer;
  ws.onopen = function () {
    state.textContent = 'open';
    ws.send('ping');
    timer = setInterval(function () { ws.send('ping'); }, 2000);
  };
  ws.onmessage = function (e) { line(e.data); };
  ws.onclose = function (e) {
    clearInterval(timer);
    state.textContent = 'closed (' + e.code + '), reconnecting…';
    setTimeout(connect, 1000);
  };
}
connect();
</script></body></html>
`;

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

const server = createServer((req, res) => {
  if (draining) res.setHeader('Connection', 'close');
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
  switch (new URL(req.url, 'http://localhost').pathname) {
    case '/health':
      return draining ? send(res, 503, 'text/plain; charset=utf-8', 'draining') : send(res, 200, 'text/plain; charset=utf-8', 'ok');
    case '/release':
      return send(res, 200, 'application/json', JSON.stringify({ release: RELEASE, pid: process.pid }));
    case '/':
      return send(res, 200, 'text/html; charset=utf-8', page());
    case '/_vango/ws': // a plain GET, without the upgrade headers
      return send(res, 400, 'text/plain; charset=utf-8', 'expected a WebSocket upgrade\n');
    default:
      return send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  }
});

function refuse(socket, status, text) {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\nSec-WebSocket-Version: 13\r\n\r\n`);
}

server.on('upgrade', (req, socket, head) => {
  const key = req.headers['sec-websocket-key'];
  if (new URL(req.url, 'http://localhost').pathname !== '/_vango/ws') return refuse(socket, 404, 'Not Found');
  if (draining) return refuse(socket, 503, 'Service Unavailable');
  const validKey = typeof key === 'string' && Buffer.from(key, 'base64').length === 16;
  if (req.method !== 'GET' || String(req.headers.upgrade).toLowerCase() !== 'websocket' ||
      req.headers['sec-websocket-version'] !== '13' || !validKey) {
    return refuse(socket, 400, 'Bad Request');
  }
  const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  openWebSocket(socket, head);
});

function validCloseCode(code) {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

function openWebSocket(socket, head) {
  let pending = []; // received bytes not yet parsed
  let pendingLength = 0;
  let need = 2; // bytes needed before parsing is worth trying again
  let message = null; // fragments of the data message being assembled
  let messageOpcode = 0;
  let messageLength = 0;
  let closeSent = false;
  let failed = false;

  function writeFrame(opcode, payload = Buffer.alloc(0)) {
    if (socket.destroyed || !socket.writable) return;
    if (closeSent && opcode !== OP.PONG) return; // nothing may follow our close frame
    if (opcode === OP.CLOSE) closeSent = true;
    const length = payload.length;
    const header = Buffer.alloc(length < 126 ? 2 : length < 65536 ? 4 : 10);
    header[0] = 0x80 | opcode; // FIN + opcode; server frames are never masked
    if (length < 126) header[1] = length;
    else if (length < 65536) { header[1] = 126; header.writeUInt16BE(length, 2); }
    else { header[1] = 127; header.writeBigUInt64BE(BigInt(length), 2); }
    socket.cork();
    socket.write(header);
    socket.write(payload);
    socket.uncork();
  }

  function close(code, reason = '') {
    const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
    payload.writeUInt16BE(code, 0);
    payload.write(reason, 2);
    writeFrame(OP.CLOSE, payload);
  }

  function fail(code, reason) {
    failed = true;
    close(code, reason);
    socket.end();
  }

  function onMessage(opcode, data) {
    if (opcode === OP.BINARY) return writeFrame(OP.BINARY, data);
    let text;
    try { text = utf8.decode(data); } catch { return fail(1007, 'invalid UTF-8'); }
    writeFrame(OP.TEXT, Buffer.from(text === 'ping' ? `pong ${RELEASE}` : `echo ${text}`));
  }

  function onFrame(fin, opcode, payload) {
    if (opcode >= 0x8) {
      if (!fin || payload.length > 125) return fail(1002, 'bad control frame');
      if (opcode === OP.PING) return writeFrame(OP.PONG, payload);
      if (opcode === OP.PONG) return;
      if (opcode !== OP.CLOSE) return fail(1002, 'unknown opcode');
      if (payload.length === 1) return fail(1002, 'bad close frame');
      if (payload.length >= 2) {
        try { utf8.decode(payload.subarray(2)); } catch { return fail(1007, 'invalid UTF-8'); }
        if (!validCloseCode(payload.readUInt16BE(0))) return fail(1002, 'bad close code');
      }
      writeFrame(OP.CLOSE, payload.subarray(0, 2)); // echo the code (no-op if we closed first)
      failed = true; // stop reading
      return socket.end();
    }
    if (opcode === OP.CONT) {
      if (!message) return fail(1002, 'unexpected continuation');
    } else if (opcode === OP.TEXT || opcode === OP.BINARY) {
      if (message) return fail(1002, 'expected continuation');
      message = []; messageOpcode = opcode; messageLength = 0;
    } else return fail(1002, 'unknown opcode');
    messageLength += payload.length;
    if (messageLength > MAX_MESSAGE) return fail(1009, 'message too big');
    message.push(payload);
    if (!fin) return;
    const data = message.length === 1 ? message[0] : Buffer.concat(message, messageLength);
    message = null;
    if (!closeSent) onMessage(messageOpcode, data);
  }

  // Parses every complete frame in buf; returns the unparsed rest and sets `need`.
  function parse(buf) {
    while (!failed) {
      if (buf.length < 2) { need = 2; return buf; }
      const fin = (buf[0] & 0x80) !== 0, opcode = buf[0] & 0x0f, masked = (buf[1] & 0x80) !== 0;
      if (buf[0] & 0x70) { fail(1002, 'reserved bits set'); break; }
      if (!masked) { fail(1002, 'client frames must be masked'); break; }
      let length = buf[1] & 0x7f, offset = 2;
      if (length === 126) {
        if (buf.length < 4) { need = 4; return buf; }
        length = buf.readUInt16BE(2); offset = 4;
      } else if (length === 127) {
        if (buf.length < 10) { need = 10; return buf; }
        const big = buf.readBigUInt64BE(2);
        if (big > BigInt(MAX_MESSAGE)) { fail(1009, 'message too big'); break; }
        length = Number(big); offset = 10;
      }
      if (buf.length < offset + 4 + length) { need = offset + 4 + length; return buf; }
      const mask = buf.subarray(offset, offset + 4);
      const payload = Buffer.from(buf.subarray(offset + 4, offset + 4 + length)); // a copy we may unmask
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      buf = buf.subarray(offset + 4 + length);
      onFrame(fin, opcode, payload);
    }
    return Buffer.alloc(0);
  }

  function feed(chunk) {
    if (failed) return;
    pending.push(chunk);
    pendingLength += chunk.length;
    if (pendingLength < need) return;
    const rest = parse(pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingLength));
    pending = rest.length ? [rest] : [];
    pendingLength = rest.length;
  }

  const conn = { close, sendText: (text) => writeFrame(OP.TEXT, Buffer.from(text)), socket };
  const keepalive = setInterval(() => writeFrame(OP.PING), 25_000);
  socket.setNoDelay(true);
  socket.setTimeout(75_000, () => socket.destroy()); // the client answers our pings well within this
  socket.on('error', () => socket.destroy());
  socket.on('close', () => { clearInterval(keepalive); connections.delete(conn); });
  socket.on('data', feed);
  connections.add(conn);
  if (head.length) feed(head); // bytes that arrived with the upgrade request
}

function drain() {
  if (draining) return;
  draining = true;
  console.log(`hello-node ${RELEASE}: SIGTERM, draining ${connections.size} WebSocket(s)`);
  // server.close's callback runs once every connection, upgraded ones included, is gone.
  server.close(() => process.exit(0));
  for (const conn of connections) {
    conn.sendText('{"type":"reconnect"}');
    conn.close(1012, 'service restart');
  }
  setTimeout(() => {
    console.log(`hello-node ${RELEASE}: drain deadline, exiting with ${connections.size} WebSocket(s) still open`);
    process.exit(0);
  }, DRAIN_MS);
}

process.on('SIGTERM', drain);
process.on('SIGINT', () => {
  for (const conn of connections) conn.close(1001, 'going away');
  process.exit(0);
});

server.listen(PORT, () => {
  console.log(`hello-node ${RELEASE} listening on :${server.address().port} (pid ${process.pid})`);
});
