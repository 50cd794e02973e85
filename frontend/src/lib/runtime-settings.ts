// The create-app form's and settings page's build and runtime fields, and their API form.
import { DEFAULT_MACHINE_SIZE, DEFAULT_REGION } from '../../../backend/lib/fly-presets.ts';
import type { App } from './types.ts';

export interface RuntimeSettings {
  rootDirectory: string;
  region: string;
  machineSize: string;
  internalPort: number;
  healthCheckPath: string;
  buildCommand: string;
  startCommand: string;
  instanceCount: number;
}

export function defaultRuntime(): RuntimeSettings {
  return {
    rootDirectory: '',
    region: DEFAULT_REGION,
    machineSize: DEFAULT_MACHINE_SIZE,
    internalPort: 8080,
    healthCheckPath: '/health',
    buildCommand: '',
    startCommand: '',
    instanceCount: 1,
  };
}

/** The API's fields from the form's (empty commands mean "use the detected one"). */
export function runtimePayload(s: RuntimeSettings) {
  return {
    rootDirectory: s.rootDirectory.trim(),
    region: s.region,
    machineSize: s.machineSize,
    internalPort: Number(s.internalPort),
    healthCheckPath: s.healthCheckPath.trim(),
    buildCommand: s.buildCommand.trim() || null,
    startCommand: s.startCommand.trim() || null,
    instanceCount: Number(s.instanceCount),
  };
}

/** The form's fields from an app's settings. */
export function runtimeOf(app: App): RuntimeSettings {
  return {
    rootDirectory: app.rootDirectory,
    region: app.region,
    machineSize: app.machineSize,
    internalPort: app.internalPort,
    healthCheckPath: app.healthCheckPath,
    buildCommand: app.buildCommand ?? '',
    startCommand: app.startCommand ?? '',
    instanceCount: app.instanceCount,
  };
}
