import { z } from 'zod';
import { githubLogin } from '../../lib/slugs.ts';

export const devLogin = { body: z.strictObject({ login: githubLogin }) };
export const githubCallback = {
  query: z.object({ code: z.string().max(200).optional(), state: z.string().max(200).optional(), error: z.string().max(200).optional() }),
};
