// Types for scripts/chromium.mjs (plain JavaScript: it runs before npm install).
export const DEFAULT_CHROMIUM: string;

/** The machine as planChromium sees it, injected so tests can describe any machine. */
export interface Machine {
  args: readonly string[];
  env: Record<string, string | undefined>;
  exists: (file: string) => boolean;
  readFile: (file: string) => string;
  isRoot: boolean;
  hasAptGet: boolean;
}

export type ChromiumPlan = { action: 'ok'; say?: undefined } | { action: 'install' | 'fail'; say: string };

export function isBrowserTest(source: string): boolean;
export function namedTestFiles(args: readonly string[]): string[];
export function planChromium(machine: Machine): ChromiumPlan;
export function ensureChromium(args: readonly string[], root: string): void;
