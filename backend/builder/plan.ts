// The Railpack build plan (railpack-plan.json), as `railpack prepare` writes it and as the
// Railpack BuildKit frontend reads it (railwayapp/railpack core/plan). Local mode's detector writes
// the same format, so a deployment stores one kind of plan whichever analyzer produced it.
// Objects are loose: a newer Railpack may add keys, and a plan we pass through to the frontend
// must keep them.
import { z } from 'zod';

const stringMap = z.record(z.string(), z.string());

/** A filesystem layer: an image, another step's output, or the app's source (`local`). */
export const layerSchema = z
  .object({
    image: z.string().optional(),
    step: z.string().optional(),
    local: z.boolean().optional(),
    spread: z.boolean().optional(),
    include: z.array(z.string()).optional(),
    exclude: z.array(z.string()).optional(),
  })
  .loose();

// Railpack tells its four command kinds apart by their keys, not by a type field.
export const execCommandSchema = z.object({ cmd: z.string(), customName: z.string().optional() }).loose();
export const copyCommandSchema = z.object({ src: z.string(), dest: z.string(), image: z.string().optional() }).loose();
/** Writes `assets[name]` of the step to `path`. */
export const fileCommandSchema = z.object({ path: z.string(), name: z.string(), mode: z.number().int().optional(), customName: z.string().optional() }).loose();
/** Prepends `path` to PATH for the rest of the step (and, in Railpack, for the image). */
export const pathCommandSchema = z.object({ path: z.string() }).loose();

// Order matters: a file command also has `path`, so it must be tried before the path command.
export const commandSchema = z.union([execCommandSchema, copyCommandSchema, fileCommandSchema, pathCommandSchema]);

export const stepSchema = z
  .object({
    name: z.string().min(1),
    inputs: z.array(layerSchema).optional(),
    commands: z.array(commandSchema).optional(),
    /** Secret names mounted as env vars in this step's commands; `*` means all of the plan's. */
    secrets: z.array(z.string()).optional(),
    assets: stringMap.optional(),
    variables: stringMap.optional(),
    /** Names of entries in the plan's top-level `caches`. */
    caches: z.array(z.string()).optional(),
  })
  .loose();

export const cacheSchema = z.object({ directory: z.string(), type: z.enum(['shared', 'locked']).optional() }).loose();

export const deploySchema = z
  .object({
    base: layerSchema,
    inputs: z.array(layerSchema).optional(),
    startCommand: z.string().optional(),
    variables: stringMap.optional(),
    /** Prepended to PATH in the image. */
    paths: z.array(z.string()).optional(),
  })
  .loose();

export const buildPlanSchema = z
  .object({
    $schema: z.string().optional(),
    steps: z.array(stepSchema).optional(),
    caches: z.record(z.string(), cacheSchema).optional(),
    secrets: z.array(z.string()).optional(),
    deploy: deploySchema,
    exclude: z.array(z.string()).optional(),
  })
  .loose();

export type Layer = z.infer<typeof layerSchema>;
export type ExecCommand = z.infer<typeof execCommandSchema>;
export type CopyCommand = z.infer<typeof copyCommandSchema>;
export type FileCommand = z.infer<typeof fileCommandSchema>;
export type PathCommand = z.infer<typeof pathCommandSchema>;
export type Command = z.infer<typeof commandSchema>;
export type Step = z.infer<typeof stepSchema>;
export type Cache = z.infer<typeof cacheSchema>;
export type Deploy = z.infer<typeof deploySchema>;
export type BuildPlan = z.infer<typeof buildPlanSchema>;

export function isExecCommand(c: Command): c is ExecCommand {
  return typeof (c as ExecCommand).cmd === 'string';
}
export function isCopyCommand(c: Command): c is CopyCommand {
  return typeof (c as CopyCommand).src === 'string' && typeof (c as CopyCommand).dest === 'string';
}
export function isFileCommand(c: Command): c is FileCommand {
  return typeof (c as FileCommand).path === 'string' && typeof (c as FileCommand).name === 'string';
}
export function isPathCommand(c: Command): c is PathCommand {
  return typeof (c as PathCommand).path === 'string' && !isFileCommand(c);
}

/** Parses a plan; the error lists what is wrong, path by path. */
export function parseBuildPlan(value: unknown): BuildPlan {
  const result = buildPlanSchema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join('.') || '(plan)'}: ${i.message}`);
  throw new Error(`invalid Railpack build plan: ${problems.join('; ')}`);
}

/** Railpack's shell form of an exec command (NewExecShellCommand): `sh -c '<cmd>'`, named after the command. */
export function shellCommand(cmd: string): ExecCommand {
  return { cmd: `sh -c ${shellQuote(cmd)}`, customName: cmd };
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// Image tags Railpack pins to its mise version (core/mise/version.txt); local plans name them so
// the plan reads like Railpack's, though the local builder runs on the host's toolchains.
export const RAILPACK_BUILDER_IMAGE = 'ghcr.io/railwayapp/railpack-builder:mise-2026.8.6';
export const RAILPACK_RUNTIME_IMAGE = 'ghcr.io/railwayapp/railpack-runtime:mise-2026.8.6';
