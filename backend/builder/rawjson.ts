// Turns `buildctl --progress rawjson` output into log lines a user can read. buildctl writes one
// client.SolveStatus JSON object per line on stderr (moby/buildkit client/graph.go): vertexes (the
// build's operations, named by Railpack: "npm ci", "install mise packages: go"…), statuses
// (progress items such as layers being pushed), logs (a command's output, base64, 1 = stdout,
// 2 = stderr) and warnings. A vertex is sent again each time it changes, so the decoder keeps
// state and reports each transition once, in the spirit of `--progress plain`.

export type BuildLogStream = 'stdout' | 'stderr' | 'system';

export interface BuildLogLine {
  stream: BuildLogStream;
  line: string;
}

export interface SolveVertex {
  digest: string;
  inputs?: string[];
  name?: string;
  started?: string;
  completed?: string;
  cached?: boolean;
  error?: string;
}

export interface SolveVertexStatus {
  id: string;
  vertex?: string;
  name?: string;
  total?: number;
  current?: number;
  timestamp?: string;
  started?: string;
  completed?: string;
}

export interface SolveVertexLog {
  vertex?: string;
  stream?: number;
  /** base64: Go encodes []byte that way. */
  data?: string;
  timestamp?: string;
}

export interface SolveVertexWarning {
  vertex?: string;
  level?: number;
  short?: string;
  detail?: string[];
  url?: string;
}

export interface SolveStatus {
  vertexes?: SolveVertex[];
  statuses?: SolveVertexStatus[];
  logs?: SolveVertexLog[];
  warnings?: SolveVertexWarning[];
}

interface VertexState {
  index: number;
  name: string;
  announced: boolean;
  cached: boolean;
  done: boolean;
}

const NAME_MAX = 60;

/**
 * How long a rawjson line may be and still be parsed: buildctl's rawjson display JSON-encodes each
 * SolveStatus it receives as one line with no size limit (moby/buildkit
 * util/progress/progressui/display.go, rawJSONDisplay.update: `json.NewEncoder(w).Encode(ss)`).
 * What bounds a line is the daemon's message: a status is split only once its log data passes
 * 1 MiB (client/status.go, SolveStatus.Marshal, `logSize > 1024*1024`), which base64 makes ~1.4 MB
 * of JSON, and a vertex's error is not split at all; the client takes gRPC messages of up to
 * 16 MiB (client/client.go, grpc.MaxCallRecvMsgSize(defaults.DefaultMaxRecvMsgSize), 16 << 20 in
 * containerd's defaults). 32 MiB leaves room for JSON's escaping of such a message.
 */
export const RAWJSON_LINE_MAX = 32 * 1024 * 1024;
/** A plain-text line (buildctl's own messages, or a line past RAWJSON_LINE_MAX) is logged in pieces of this size. */
export const TEXT_LINE_MAX = 16 * 1024;

export class RawJsonDecoder {
  private vertexes = new Map<string, VertexState>();
  private partial = new Map<string, { vertex: string; stream: number; text: string }>();
  private statusesDone = new Set<string>();
  /** The last vertex error, as "<name>: <error>": the reason a failed build gives. */
  lastError: { vertex: string; error: string } | undefined;

  decode(raw: string): BuildLogLine[] {
    const text = raw.trim();
    if (!text) return [];
    let status: SolveStatus;
    try {
      status = JSON.parse(text) as SolveStatus;
    } catch {
      // buildctl's own messages (e.g. "error: failed to solve: …") are plain text on the same stream.
      return plainText(raw);
    }
    if (typeof status !== 'object' || status === null) return plainText(raw);
    // A vertex's start comes before its progress and output, its end after them, even when one
    // message carries all three.
    const out: BuildLogLine[] = [];
    const vertexes = (status.vertexes ?? []).filter((v) => typeof v?.digest === 'string');
    for (const v of vertexes) this.vertexStart(v, out);
    for (const s of status.statuses ?? []) this.status(s, out);
    for (const l of status.logs ?? []) this.log(l, out);
    for (const v of vertexes) this.vertexEnd(v, out);
    for (const w of status.warnings ?? []) this.warning(w, out);
    return out;
  }

  /** Lines still waiting for their newline, at the end of the build. */
  flush(): BuildLogLine[] {
    const out: BuildLogLine[] = [];
    for (const key of [...this.partial.keys()]) this.flushKey(key, out);
    return out;
  }

  private state(digest: string, name?: string): VertexState {
    let s = this.vertexes.get(digest);
    if (!s) {
      s = { index: this.vertexes.size + 1, name: name ?? digest.slice(0, 19), announced: false, cached: false, done: false };
      this.vertexes.set(digest, s);
    }
    if (name) s.name = name;
    return s;
  }

  private announce(digest: string, out: BuildLogLine[]): VertexState {
    const s = this.state(digest);
    if (!s.announced) {
      s.announced = true;
      out.push({ stream: 'system', line: `#${s.index} ${s.name}` });
    }
    return s;
  }

  private vertexStart(v: SolveVertex, out: BuildLogLine[]): void {
    const s = this.state(v.digest, v.name);
    if (v.started || v.cached || v.completed) this.announce(v.digest, out);
    if (v.cached && !s.cached) {
      s.cached = true;
      s.done = true;
      out.push({ stream: 'system', line: `#${s.index} CACHED` });
    }
  }

  private vertexEnd(v: SolveVertex, out: BuildLogLine[]): void {
    const s = this.state(v.digest);
    if (s.done || !(v.error || v.completed)) return;
    s.done = true;
    this.flushVertex(v.digest, out);
    if (v.error) {
      this.lastError = { vertex: s.name, error: v.error };
      out.push({ stream: 'stderr', line: `#${s.index} ERROR: ${v.error}` });
    } else {
      out.push({ stream: 'system', line: `#${s.index} DONE${duration(v.started, v.completed)}` });
    }
  }

  private status(st: SolveVertexStatus, out: BuildLogLine[]): void {
    if (!st?.id || !st.completed) return;
    const key = `${st.vertex ?? ''}\u0000${st.id}`;
    if (this.statusesDone.has(key)) return;
    this.statusesDone.add(key);
    const prefix = st.vertex ? `#${this.announce(st.vertex, out).index} ` : '';
    const size = st.total ? ` ${bytes(st.current ?? st.total)} / ${bytes(st.total)}` : st.current ? ` ${bytes(st.current)}` : '';
    out.push({ stream: 'system', line: `${prefix}${st.name ?? st.id}${size}${duration(st.started, st.completed)} done` });
  }

  private log(l: SolveVertexLog, out: BuildLogLine[]): void {
    if (!l?.data) return;
    const vertex = l.vertex ?? '';
    const stream = l.stream ?? 1;
    const key = `${vertex}\u0000${stream}`;
    const text = (this.partial.get(key)?.text ?? '') + Buffer.from(l.data, 'base64').toString('utf8');
    const lines = text.split('\n');
    const rest = lines.pop() ?? '';
    for (const line of lines) out.push(this.logLine(vertex, stream, line));
    if (rest) this.partial.set(key, { vertex, stream, text: rest });
    else this.partial.delete(key);
  }

  private logLine(vertex: string, stream: number, line: string): BuildLogLine {
    const name = vertex ? this.state(vertex).name : 'buildkit';
    const label = name.length > NAME_MAX ? `${name.slice(0, NAME_MAX - 1)}…` : name;
    return { stream: stream === 2 ? 'stderr' : 'stdout', line: `[${label}] ${line}`.trimEnd() };
  }

  private flushVertex(vertex: string, out: BuildLogLine[]): void {
    for (const key of [...this.partial.keys()]) if (key.startsWith(`${vertex}\u0000`)) this.flushKey(key, out);
  }

  private flushKey(key: string, out: BuildLogLine[]): void {
    const p = this.partial.get(key);
    this.partial.delete(key);
    if (p?.text) out.push(this.logLine(p.vertex, p.stream, p.text));
  }

  private warning(w: SolveVertexWarning, out: BuildLogLine[]): void {
    if (!w) return;
    const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8').trim();
    const prefix = w.vertex ? `#${this.state(w.vertex).index} ` : '';
    out.push({ stream: 'stderr', line: `${prefix}WARNING: ${w.short ? decode(w.short) : '(no message)'}` });
    for (const d of w.detail ?? []) out.push({ stream: 'stderr', line: `${prefix}  ${decode(d)}` });
    if (w.url) out.push({ stream: 'stderr', line: `${prefix}  more: ${w.url}` });
  }
}

/**
 * Decodes one rawjson line. Pass the same decoder for every line of a build: logs refer to
 * vertexes by digest, and their names arrive in earlier lines.
 */
export function decodeRawJson(line: string, decoder: RawJsonDecoder = new RawJsonDecoder()): BuildLogLine[] {
  return decoder.decode(line);
}

function plainText(raw: string): BuildLogLine[] {
  const out: BuildLogLine[] = [];
  for (let i = 0; i < raw.length; i += TEXT_LINE_MAX) out.push({ stream: 'stderr', line: raw.slice(i, i + TEXT_LINE_MAX) });
  return out;
}

function duration(started?: string, completed?: string): string {
  if (!started || !completed) return '';
  const ms = Date.parse(completed) - Date.parse(started);
  return Number.isFinite(ms) && ms >= 0 ? ` ${(ms / 1000).toFixed(1)}s` : '';
}

function bytes(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)}kB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)}MB`;
  return `${(n / 1024 ** 3).toFixed(2)}GB`;
}
