import type { Context, Next } from 'koa';
import { z } from 'zod';
import { ValidationError } from '../lib/errors.ts';

export interface RequestShape {
  body?: z.ZodType;
  query?: z.ZodType;
  params?: z.ZodType;
}

export type Input<S extends RequestShape> = {
  [K in keyof S]: S[K] extends z.ZodType ? z.infer<S[K]> : never;
};

function describe(issues: z.core.$ZodIssue[], where: string) {
  return issues.map((issue) => {
    const field = [where, ...issue.path.map(String)].join('.');
    if (issue.code === 'unrecognized_keys') {
      return { field, message: `unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.join(', ')}` };
    }
    // A bad record key (an env var name): zod's own message says only "Invalid key in record".
    if (issue.code === 'invalid_key' && issue.issues.length > 0) {
      return { field, message: issue.issues.map((i) => i.message).join('; ') };
    }
    return { field, message: issue.message };
  });
}

/** Parses {body, query, params} with zod into ctx.state.input; any problem is a 400 listing each field. */
export function validate<S extends RequestShape>(shape: S) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const input: Record<string, unknown> = {};
    const problems: { field: string; message: string }[] = [];
    const sources: Record<string, unknown> = {
      body: ctx.request.body ?? (shape.body ? {} : undefined),
      query: ctx.query,
      params: (ctx as unknown as { params?: unknown }).params ?? {},
    };
    for (const where of ['params', 'query', 'body'] as const) {
      const schema = shape[where];
      if (!schema) continue;
      const result = schema.safeParse(sources[where]);
      if (result.success) input[where] = result.data;
      else problems.push(...describe(result.error.issues, where));
    }
    if (problems.length > 0) {
      const first = problems[0];
      const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
      throw new ValidationError(`${first.field}: ${first.message}${more}`, problems);
    }
    ctx.state.input = input;
    return next();
  };
}

export function inputOf<S extends RequestShape>(ctx: Context, _shape: S): Input<S> {
  return ctx.state.input as Input<S>;
}
