// .env text ⇄ variables, for the env editor. Accepts what people paste: comments, blank lines,
// `export `, single or double quotes (double quotes understand \n, \t, \" and \\), and
// multi-line double-quoted values.

export interface ParsedEnv {
  vars: Record<string, string>;
  /** Line numbers (1-based) with what is wrong on each. */
  problems: { line: number; message: string }[];
}

const NAME = /^[A-Z_][A-Z0-9_]*$/;

export function parseDotenv(text: string): ParsedEnv {
  const vars: Record<string, string> = {};
  const problems: ParsedEnv['problems'] = [];
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i].trim();
    if (!raw || raw.startsWith('#')) continue;
    const m = /^(?:export\s+)?([^=\s]+)\s*=\s*(.*)$/.exec(raw);
    if (!m) {
      problems.push({ line: lineNo, message: 'is not NAME=value' });
      continue;
    }
    const [, name, rest] = m;
    if (!NAME.test(name)) {
      problems.push({ line: lineNo, message: `${name}: names use upper case letters, digits and underscores, not starting with a digit` });
      continue;
    }
    let value: string;
    if (rest.startsWith('"')) {
      // Scan for the closing quote, across lines if need be, undoing escapes on the way.
      const ESCAPES: Record<string, string> = { n: '\n', t: '\t', '"': '"', '\\': '\\' };
      let body = rest.slice(1);
      let out = '';
      let closed = false;
      for (;;) {
        for (let j = 0; j < body.length; j++) {
          const c = body[j];
          if (c === '\\' && j + 1 < body.length) {
            const n = body[++j];
            out += ESCAPES[n] ?? `\\${n}`;
          } else if (c === '"') {
            closed = true;
            break;
          } else out += c;
        }
        if (closed || i + 1 >= lines.length) break;
        out += '\n';
        body = lines[++i];
      }
      if (!closed) {
        problems.push({ line: lineNo, message: `${name}: the double quote is never closed` });
        continue;
      }
      value = out;
    } else if (rest.startsWith("'")) {
      const end = rest.indexOf("'", 1);
      if (end < 0) {
        problems.push({ line: lineNo, message: `${name}: the single quote is never closed` });
        continue;
      }
      value = rest.slice(1, end);
    } else {
      value = rest.replace(/\s+#.*$/, '').trim();
    }
    vars[name] = value;
  }
  return { vars, problems };
}

export function toDotenv(vars: Record<string, string>): string {
  return Object.entries(vars)
    .map(([k, v]) =>
      /^[A-Za-z0-9_./:@+-]*$/.test(v) ? `${k}=${v}` : `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\t/g, '\\t')}"`,
    )
    .join('\n');
}

/** What saving `next` over `current` changes: the API's PUT body (null deletes) and a summary. */
export function envChanges(current: Record<string, string>, next: Record<string, string>) {
  const body: Record<string, string | null> = {};
  const added: string[] = [];
  const changed: string[] = [];
  const removed: string[] = [];
  for (const [k, v] of Object.entries(next)) {
    if (!(k in current)) added.push(k);
    else if (current[k] !== v) changed.push(k);
    else continue;
    body[k] = v;
  }
  for (const k of Object.keys(current)) {
    if (!(k in next)) {
      removed.push(k);
      body[k] = null;
    }
  }
  return { body, added, changed, removed };
}
