import { z } from 'zod';
import { appSlug, teamSlug } from '../../lib/slugs.ts';
import { DEFAULT_MACHINE_SIZE, DEFAULT_REGION, MACHINE_SIZE_NAMES, REGION_CODES } from '../../lib/fly-presets.ts';
import { pageQuery } from '../../lib/pagination.ts';

// git's own ref-name rules, enough to refuse anything that is not a branch name.
const branch = z
  .string()
  .min(1, 'is required')
  .max(255, 'must be at most 255 characters')
  .refine(
    // eslint-disable-next-line no-control-regex -- git-check-ref-format forbids control characters, so the pattern names them.
    (b) => !/(^[-/.]|\.\.|[\s~^:?*[\\\x00-\x1f\x7f]|@\{|\/\/|\/$|\.lock$|\.$)/.test(b),
    'is not a valid git branch name',
  );

const githubSource = z.strictObject({
  type: z.literal('github'),
  repo: z.string().regex(/^[A-Za-z0-9-]{1,39}\/[A-Za-z0-9._-]{1,100}$/, 'must be "owner/name"'),
  branch,
  installationId: z.number().int().positive(),
  // Rhone fills it in from the installation; accepted so a source read from the API can be sent back.
  repositoryId: z.number().int().positive().optional(),
});

const gitSource = z.strictObject({
  type: z.literal('git'),
  url: z
    .string()
    .max(2048)
    .refine((u) => URL.canParse(u), 'must be a URL (https://… or file://…)'),
  branch,
});

export const source = z.discriminatedUnion('type', [githubSource, gitSource], {
  error: 'must be {type: "github", repo, branch, installationId} or {type: "git", url, branch}',
});

const rootDirectory = z
  .string()
  .max(255)
  .refine((d) => !d.startsWith('/') && !d.split('/').includes('..'), 'must be a path inside the repository, without ".."');

const command = z.string().trim().min(1).max(1000).nullable();

const settings = {
  rootDirectory,
  buildCommand: command,
  startCommand: command,
  region: z.enum(REGION_CODES, { error: `must be one of Fly's regions: ${REGION_CODES.join(', ')}` }),
  machineSize: z.enum(MACHINE_SIZE_NAMES, { error: `must be one of ${MACHINE_SIZE_NAMES.join(', ')}` }),
  internalPort: z.number().int().min(1).max(65535),
  healthCheckPath: z
    .string()
    .max(255)
    .regex(/^\/[\x21-\x7e]*$/, 'must start with "/" and have no spaces'),
  instanceCount: z.number().int().min(1, 'must be at least 1').max(10, 'must be at most 10'),
  autoDeploy: z.boolean(),
};

const name = z.string().trim().min(1, 'is required').max(64, 'must be at most 64 characters');

export const listApps = {
  params: z.object({ team: teamSlug }),
  query: pageQuery,
};

export const createApp = {
  params: z.object({ team: teamSlug }),
  body: z.strictObject({
    name,
    slug: appSlug,
    source,
    rootDirectory: settings.rootDirectory.default(''),
    buildCommand: settings.buildCommand.optional(),
    startCommand: settings.startCommand.optional(),
    region: settings.region.default(DEFAULT_REGION),
    machineSize: settings.machineSize.default(DEFAULT_MACHINE_SIZE),
    internalPort: settings.internalPort.default(8080),
    healthCheckPath: settings.healthCheckPath.default('/health'),
    instanceCount: settings.instanceCount.default(1),
    autoDeploy: settings.autoDeploy.default(true),
  }),
};

export const appParams = { params: z.object({ app: appSlug }) };

export const updateApp = {
  params: z.object({ app: appSlug }),
  body: z
    .strictObject({
      name: name.optional(),
      source: source.optional(),
      rootDirectory: settings.rootDirectory.optional(),
      buildCommand: settings.buildCommand.optional(),
      startCommand: settings.startCommand.optional(),
      region: settings.region.optional(),
      machineSize: settings.machineSize.optional(),
      internalPort: settings.internalPort.optional(),
      healthCheckPath: settings.healthCheckPath.optional(),
      instanceCount: settings.instanceCount.optional(),
      autoDeploy: settings.autoDeploy.optional(),
    })
    .refine((b) => Object.keys(b).length > 0, 'send at least one field to change'),
};

export type CreateAppInput = z.infer<typeof createApp.body>;
export type UpdateAppInput = z.infer<typeof updateApp.body>;
