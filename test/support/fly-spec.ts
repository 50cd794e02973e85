// Checks requests and responses against Fly's own Machines API spec (the copy in
// backend/providers/fly/spec/, whose README says where it comes from) with Ajv. Used by the local runtime's tests, and by
// the Fly client's tests on what the client sends and what fakes answer.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import formats from 'ajv-formats';

export const SPEC_PATH = path.resolve(fileURLToPath(import.meta.url), '../../../backend/providers/fly/spec/fly-machines-openapi.json');

interface MediaType {
  schema?: unknown;
}
interface Operation {
  operationId?: string;
  requestBody?: { required?: boolean; content?: Record<string, MediaType> };
  responses: Record<string, { content?: Record<string, MediaType> }>;
}
interface Spec {
  paths: Record<string, Record<string, Operation>>;
}

export const spec = JSON.parse(readFileSync(SPEC_PATH, 'utf8')) as Spec;

// Ajv 8 reads OpenAPI 3.0's `nullable`; strict off lets it pass over `example`, `x-*` and the rest.
const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
(formats as unknown as (a: Ajv) => void)(ajv);
ajv.addSchema(spec as object, 'fly');

const compiled = new Map<string, ValidateFunction>();

/** A JSON pointer into the spec, as a $ref Ajv resolves against the whole document. */
function refTo(...segments: string[]): string {
  return `fly#/${segments.map((s) => encodeURIComponent(s.replace(/~/g, '~0').replace(/\//g, '~1'))).join('/')}`;
}

function validatorFor(ref: string): ValidateFunction {
  let v = compiled.get(ref);
  if (!v) {
    v = ajv.compile({ $ref: ref });
    compiled.set(ref, v);
  }
  return v;
}

function check(ref: string, data: unknown, what: string): void {
  const validate = validatorFor(ref);
  if (!validate(data)) {
    const detail = ajv.errorsText(validate.errors, { separator: '\n  ', dataVar: 'body' });
    throw new Error(`${what} does not match Fly's spec:\n  ${detail}\nbody: ${JSON.stringify(data).slice(0, 2000)}`);
  }
}

export function operation(method: string, pathTemplate: string): Operation {
  const op = spec.paths[pathTemplate]?.[method.toLowerCase()];
  if (!op) throw new Error(`Fly's spec has no operation ${method.toUpperCase()} ${pathTemplate}`);
  return op;
}

/**
 * The spec's path template for a concrete path ("/v1/apps/a/machines/m1/wait" →
 * "/v1/apps/{app_name}/machines/{machine_id}/wait"); the most literal template wins.
 */
export function findPathTemplate(method: string, concretePath: string): string | undefined {
  const segments = concretePath.split('?')[0].split('/').filter(Boolean);
  let best: { template: string; literals: number } | undefined;
  for (const [template, ops] of Object.entries(spec.paths)) {
    if (!ops[method.toLowerCase()]) continue;
    const parts = template.split('/').filter(Boolean);
    if (parts.length !== segments.length) continue;
    let literals = 0;
    const fits = parts.every((p, i) => {
      if (p.startsWith('{')) return true;
      literals++;
      return p === segments[i];
    });
    if (fits && (!best || literals > best.literals)) best = { template, literals };
  }
  return best?.template;
}

/**
 * Throws unless the body is what the spec says this operation answers with this status. A 4xx or
 * 5xx the operation does not list must still be an ErrorResponse; an unlisted 2xx is an error.
 */
export function validateResponse(method: string, pathTemplate: string, status: number, body: unknown): void {
  const op = operation(method, pathTemplate);
  const what = `${method.toUpperCase()} ${pathTemplate} → ${status}`;
  const response = op.responses[String(status)] ?? op.responses.default;
  if (!response) {
    if (status >= 400) return check(refTo('components', 'schemas', 'ErrorResponse'), body, what);
    throw new Error(`${what}: the spec lists no ${status} answer for this operation (it lists ${Object.keys(op.responses).join(', ')})`);
  }
  const media = response.content?.['application/json'] ? 'application/json' : Object.keys(response.content ?? {})[0];
  if (!media || !response.content?.[media]?.schema) {
    if (status === 204 && body !== undefined && body !== '') throw new Error(`${what}: a 204 has no body, got ${JSON.stringify(body)}`);
    return;
  }
  check(refTo('paths', pathTemplate, method.toLowerCase(), 'responses', String(status), 'content', media, 'schema'), body, what);
}

/** Throws unless the body is what the spec says this operation accepts. */
export function validateRequest(method: string, pathTemplate: string, body: unknown): void {
  const op = operation(method, pathTemplate);
  const what = `request ${method.toUpperCase()} ${pathTemplate}`;
  const content = op.requestBody?.content;
  if (!content) {
    if (body !== undefined) throw new Error(`${what}: the spec takes no body for this operation`);
    return;
  }
  if (body === undefined) {
    if (op.requestBody?.required) throw new Error(`${what}: the spec requires a body`);
    return;
  }
  const media = content['application/json'] ? 'application/json' : Object.keys(content)[0];
  check(refTo('paths', pathTemplate, method.toLowerCase(), 'requestBody', 'content', media, 'schema'), body, what);
}
