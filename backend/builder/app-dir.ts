// A read-only view of the app's root directory for the detector: which files exist, their text.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

export class AppDir {
  private constructor(
    readonly dir: string,
    /** Top-level entry names; directories end with "/". */
    readonly entries: Set<string>,
  ) {}

  static async open(dir: string): Promise<AppDir> {
    const dirents = await readdir(dir, { withFileTypes: true });
    return new AppDir(dir, new Set(dirents.map((d) => (d.isDirectory() ? `${d.name}/` : d.name))));
  }

  hasFile(name: string): boolean {
    return this.entries.has(name);
  }

  hasDir(name: string): boolean {
    return this.entries.has(`${name}/`);
  }

  async readText(name: string): Promise<string | undefined> {
    try {
      return await readFile(path.join(this.dir, name), 'utf8');
    } catch {
      return undefined;
    }
  }

  /** Parsed JSON, or undefined when the file is missing; a broken file is the caller's error to report. */
  async readJson(name: string): Promise<{ value?: unknown; error?: string }> {
    const text = await this.readText(name);
    if (text === undefined) return {};
    try {
      return { value: JSON.parse(text) as unknown };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  /** Names of the subdirectories of `name` (e.g. cmd/*), sorted. */
  async subdirs(name: string): Promise<string[]> {
    try {
      const dirents = await readdir(path.join(this.dir, name), { withFileTypes: true });
      return dirents
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort();
    } catch {
      return [];
    }
  }

  async dirHasFile(name: string, test: (file: string) => boolean): Promise<boolean> {
    try {
      const files = await readdir(path.join(this.dir, name));
      return files.some(test);
    } catch {
      return false;
    }
  }

  /** A short listing for error messages, so the user sees what Rhone saw. */
  describe(max = 12): string {
    const names = [...this.entries].filter((n) => n !== '.git/').sort();
    if (names.length === 0) return 'the directory is empty';
    const shown = names.slice(0, max).join(', ');
    return `it holds ${shown}${names.length > max ? `, and ${names.length - max} more` : ''}`;
  }
}
