// Child process of bench/sse.ts: opens event-stream clients on raw sockets (no keep-alive, no
// fetch, not even http.request: the client side should cost as little as possible) and measures
// the time from each log line's send stamp ("t=<tenths of a ms since the epoch>") to its arrival
// here (see record() for how lines are sampled). The parent sends {url, cookie, count} over IPC;
// this process answers {connected} once every stream is open and has replayed the deployment's
// first event, and {result} once every stream has ended.
import net from 'node:net';

export interface ClientsJob {
  url: string;
  cookie: string;
  count: number;
}

export interface ClientsResult {
  /** Lag histogram in 0.1 ms buckets; the last bucket holds everything slower. */
  histogram: number[];
  /** The last event id each client saw (the range over clients). */
  lastIdPerClient: { min: number; max: number };
  endedCleanly: number;
  failures: string[];
  worstBySecond: [number, number][];
}

const BUCKETS = 100_000; // 10 s at 0.1 ms
const STAMP = Buffer.from('"line":"t=');
const ID = Buffer.from('id: ');
const END = Buffer.from('event: end');
const FRAME_END = Buffer.from('\n\n');
const DIGIT_0 = 0x30;

const histogram = new Uint32Array(BUCKETS);
/** The worst lag of the lines sent in each second (epoch second → tenths of a ms), to tell a stall from a slow drift. */
const worstBySecond = new Map<number, number>();
const now10 = () => (performance.timeOrigin + performance.now()) * 10;

function readNumber(buf: Buffer, at: number): number {
  let n = 0;
  for (let i = at, c = buf[i]; c >= DIGIT_0 && c <= DIGIT_0 + 9; c = buf[++i]) n = n * 10 + (c - DIGIT_0);
  return n;
}

/**
 * Scanning every line would make the clients, not the api, the bottleneck on a small machine. The
 * server writes each published batch to a client in one piece, and a batch's lines share a stamp,
 * so one stamp per chunk (the first, i.e. the oldest) stands for every frame in it: when a chunk
 * spans several batches this overstates the later ones' lag, never understates it. Frames are
 * counted by id, and ids must follow on from chunk to chunk.
 */
function record(buf: Buffer, upTo: number, arrived10: number, state: { lastId: number; lines: number; gaps: number }): void {
  const firstId = buf.indexOf(ID);
  if (firstId === -1 || firstId > upTo) return;
  const lastId = buf.lastIndexOf(ID, upTo);
  const first = readNumber(buf, firstId + ID.length);
  const last = readNumber(buf, lastId + ID.length);
  if (first !== state.lastId + 1) state.gaps++;
  const frames = last - state.lastId;
  state.lastId = last;
  const stamp = buf.indexOf(STAMP);
  if (stamp === -1 || stamp > upTo) return; // only status events
  const lag = Math.floor(arrived10 - readNumber(buf, stamp + STAMP.length));
  histogram[lag < 0 ? 0 : lag >= BUCKETS ? BUCKETS - 1 : lag] += frames;
  const second = Math.floor(arrived10 / 10_000 - lag / 10_000);
  if (lag > (worstBySecond.get(second) ?? -1)) worstBySecond.set(second, lag);
  state.lines += frames;
}

/** One read buffer for every socket: reads are synchronous callbacks, and nothing keeps a view of it. */
const readBuffer = Buffer.alloc(256 * 1024);

/**
 * A raw socket and a hand-written GET, read through `onread` into the shared buffer: http.request
 * allocated a Buffer and ran the stream machinery for every chunk, which made the clients, not
 * the api, the bottleneck of this benchmark on a small machine. The response is chunked; the
 * chunk-size lines sit between frames (the server writes whole frames) and never look like
 * "id: " or a stamp, so the scan ignores them.
 */
function openClient(job: ClientsJob, onOpen: () => void, onDone: (lastId: number, ended: boolean, failure?: string) => void): void {
  const url = new URL(job.url);
  const state = { lastId: 0, lines: 0, gaps: 0 };
  let ended = false;
  let settled = false;
  let head: Buffer | null = Buffer.alloc(0);
  let carry: Buffer | null = null;
  const settle = (failure?: string) => {
    if (settled) return;
    settled = true;
    onDone(state.lastId, ended, failure ?? (state.gaps ? `${state.gaps} gaps in the ids` : undefined));
  };
  const body = (bytes: Buffer) => {
    const arrived = now10();
    const buf = carry ? Buffer.concat([carry, bytes]) : bytes;
    const n = buf.length;
    // A read nearly always ends with a frame and its chunk's CRLF; searching backwards is the slow path.
    const cut = buf[n - 1] === 0x0a && buf[n - 2] === 0x0d && buf[n - 3] === 0x0a && buf[n - 4] === 0x0a ? n - 4 : buf.lastIndexOf(FRAME_END);
    if (cut === -1) {
      carry = Buffer.from(buf);
      return;
    }
    // Copied: `bytes` is the shared read buffer, overwritten by the next read.
    carry = cut + 2 < n ? Buffer.from(buf.subarray(cut + 2)) : null;
    const before = state.lastId;
    record(buf, cut, arrived, state);
    // Open means caught up: the deployment's first event, replayed from the database, is in.
    if (before === 0 && state.lastId > 0) onOpen();
    if (!ended && buf.indexOf(END, Math.max(0, cut - 32)) !== -1) ended = true;
  };
  const socket = net.connect({
    host: url.hostname,
    port: Number(url.port),
    onread: {
      buffer: readBuffer,
      callback: (size: number, buffer: Uint8Array) => {
        const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, size);
        if (!head) {
          body(bytes);
          return true;
        }
        head = Buffer.concat([head, bytes]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return true;
        const status = head.subarray(0, head.indexOf('\r\n')).toString();
        const rest = Buffer.from(head.subarray(end + 4));
        head = null;
        if (!status.startsWith('HTTP/1.1 200 ')) {
          settle(status);
          socket.destroy();
          return false;
        }
        if (rest.length > 0) body(rest);
        return true;
      },
    },
  });
  socket.setNoDelay(true);
  socket.on('connect', () => {
    socket.write(
      `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nCookie: ${job.cookie}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n`,
    );
  });
  socket.on('close', () => settle());
  socket.on('error', (err) => settle(err.message));
}

process.on('message', (job: ClientsJob) => {
  let open = 0;
  let done = 0;
  let endedCleanly = 0;
  const counts: number[] = [];
  const failures: string[] = [];
  const onOpen = () => {
    if (++open === job.count) process.send?.({ connected: true });
  };
  const onDone = (lastId: number, ended: boolean, failure?: string) => {
    counts.push(lastId);
    if (ended) endedCleanly++;
    if (failure) failures.push(failure);
    if (++done < job.count) return;
    const result: ClientsResult = {
      histogram: Array.from(histogram),
      lastIdPerClient: { min: Math.min(...counts), max: Math.max(...counts) },
      endedCleanly,
      failures,
      worstBySecond: [...worstBySecond],
    };
    process.send?.({ result }, () => process.exit(0));
  };
  // Opened in waves, so the api's accept queue never overflows into SYN retries.
  let started = 0;
  const wave = () => {
    for (let i = 0; i < 50 && started < job.count; i++, started++) openClient(job, onOpen, onDone);
    if (started < job.count) setTimeout(wave, 20);
  };
  wave();
});
process.on('disconnect', () => process.exit(0));
