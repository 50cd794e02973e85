import { z } from 'zod';
import { teamSlug } from '../../lib/slugs.ts';

const name = z.string().trim().min(1, 'is required').max(64, 'must be at most 64 characters');

export const createTeam = { body: z.strictObject({ slug: teamSlug, name }) };
export const teamParams = { params: z.object({ team: teamSlug }) };
export const updateTeam = { params: z.object({ team: teamSlug }), body: z.strictObject({ name }) };
