// Plan helpers for running a plan outside BuildKit: the order its steps can run in, and which
// source files its `exclude` keeps out of the workspace.
import path from 'node:path';
import { BuildError } from './errors.ts';
import type { Step } from './plan.ts';

/**
 * Steps ordered so each runs after the steps it takes as inputs; otherwise in plan order (Railpack
 * does not promise its steps array is in dependency order: packages:apt:runtime may come last).
 */
export function orderSteps(steps: Step[]): Step[] {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const state = new Map<string, 'visiting' | 'done'>();
  const ordered: Step[] = [];
  const visit = (step: Step, chain: string[]) => {
    const seen = state.get(step.name);
    if (seen === 'done') return;
    if (seen === 'visiting') {
      throw new BuildError(`the build plan's steps depend on each other in a cycle: ${[...chain, step.name].join(' → ')}`);
    }
    state.set(step.name, 'visiting');
    for (const input of step.inputs ?? []) {
      const dep = input.step ? byName.get(input.step) : undefined;
      if (dep) visit(dep, [...chain, step.name]);
    }
    state.set(step.name, 'done');
    ordered.push(step);
  };
  for (const step of steps) visit(step, []);
  return ordered;
}

/** `**` any path, `*` any name, `?` one character; a pattern matches a path or anything under it. */
function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}(/.*)?$`);
}

/**
 * An fs.cp filter for the source: never .git (history is not part of an image), nor what the
 * plan's `exclude` names (Railpack merges .dockerignore into it).
 */
export function sourceFilter(sourceDir: string, exclude: string[] = []): (src: string) => boolean {
  const patterns = ['.git', ...exclude]
    .map((p) =>
      p
        .trim()
        .replace(/^\.?\//, '')
        .replace(/\/+$/, ''),
    )
    .filter((p) => p && !p.startsWith('!') && !p.startsWith('#'))
    .map(globToRegExp);
  return (src) => {
    const rel = path.relative(sourceDir, src).split(path.sep).join('/');
    if (rel === '') return true;
    return !patterns.some((re) => re.test(rel));
  };
}
