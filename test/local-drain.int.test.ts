// Stopping a machine the way Fly does: the stop signal goes to the main process only, and the
// machine is stopped once everything it ran has exited (or the stop timeout's SIGKILL ended it).
// Rhone's images run the start command behind a wrapper that passes the signal on to the whole
// app, so an app behind a shell (`npm run start` → sh -c → node) still drains its connections.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { imageCommand } from '../backend/builder/start-command.ts';
import { importImage } from '../local/images.ts';
import { useRuntime, until } from './local-helpers.ts';

// Writes "ready" once running; on SIGTERM it writes "told", takes DRAIN_MS to "drain", then writes "drained".
const DRAINING_APP = `
import { writeFileSync } from 'node:fs';
const out = process.env.MARKERS;
process.on('SIGTERM', () => {
  writeFileSync(out + '/told', String(Date.now()));
  setTimeout(() => { writeFileSync(out + '/drained', String(Date.now())); process.exit(0); }, Number(process.env.DRAIN_MS));
});
writeFileSync(out + '/ready', String(process.pid));
setInterval(() => {}, 60_000);
`;

describe('local runtime: graceful drain behind a shell', function () {
  this.timeout(30_000);
  const rt = useRuntime();

  const NODE = `"${process.execPath}" app.mjs`;

  /** A machine whose image command is `cmd` (given the app's command line), started and running the app. */
  async function machineRunning(cmd: (app: string) => string[], drainMs: number) {
    const appDir = mkdtempSync(path.join(os.tmpdir(), 'rhone-drain-app-'));
    const markers = mkdtempSync(path.join(os.tmpdir(), 'rhone-drain-markers-'));
    writeFileSync(path.join(appDir, 'app.mjs'), DRAINING_APP);
    await importImage(rt.dataDir, 'drainer', 'v1', appDir, { cmd: cmd(NODE) });
    const app = await rt.api.createApp('rhone-drainer');
    const m = await rt.api.createMachine(app, {
      config: { image: 'rhone-local/drainer:v1', env: { MARKERS: markers, DRAIN_MS: String(drainMs) }, restart: { policy: 'always' } },
    });
    await rt.api.wait(app, m.id, 'started');
    await until('the app to start', () => existsSync(path.join(markers, 'ready')));
    const stop = async (timeout: string) => {
      const started = Date.now();
      const res = await rt.api.call('POST', '/v1/apps/{app_name}/machines/{machine_id}/stop', {
        params: { app_name: app, machine_id: m.id },
        body: { signal: 'SIGTERM', timeout },
      });
      assert.equal(res.status, 200);
      const stopped = await rt.api.wait(app, m.id, 'stopped', 15, m.version);
      assert.equal(stopped.body.state, 'stopped');
      const [exit] = await rt.api.events(app, m.id);
      return { started, tookMs: Date.now() - started, stoppedAt: exit.timestamp as number };
    };
    const marker = (name: string) => (existsSync(path.join(markers, name)) ? Number(readFileSync(path.join(markers, name), 'utf8')) : undefined);
    return { stop, marker };
  }

  it('sends the stop signal to the main process only, as Fly does: a bare shell in front swallows it', async () => {
    // dash waits in a builtin; SIGTERM's default action ends it at once, and the app never hears of it.
    const { stop, marker } = await machineRunning((app) => ['sh', '-c', `${app} & wait`], 100);
    const { tookMs } = await stop('1s');
    assert.equal(marker('told'), undefined, 'the app behind the shell was signalled directly');
    assert.ok(tookMs >= 900, `stopped after ${tookMs} ms: the group should have lived until the timeout's SIGKILL`);
  });

  it('waits for the whole group after the main process exits, until the app has drained', async () => {
    // A main process that passes the signal on and exits at once, leaving the app draining.
    const forwardAndExit = (app: string) => ['sh', '-c', `${app} & child=$!; trap 'kill -TERM $child; exit 0' TERM; wait`];
    const { stop, marker } = await machineRunning(forwardAndExit, 700);
    const { started, stoppedAt } = await stop('10s');
    const drained = marker('drained');
    assert.ok(drained, 'the app was killed before it finished draining');
    assert.ok(drained - started >= 600, `drained after ${drained - started} ms`);
    assert.ok(stoppedAt >= drained, 'the machine was reported stopped before its app had drained');
  });

  it('drains an app behind `sh -c` when started through the image wrapper Rhone builds with', async () => {
    // What `npm run start` looks like: a dash `sh -c` (which does not exec) between the wrapper and node.
    const { stop, marker } = await machineRunning((app) => imageCommand(`sh -c '${app}'`), 700);
    const { started, stoppedAt } = await stop('10s');
    const told = marker('told');
    const drained = marker('drained');
    assert.ok(told && drained, 'the app was not told to drain, or killed before it finished');
    assert.ok(told - started < 500, `told after ${told - started} ms`);
    assert.ok(stoppedAt >= drained, 'the machine was reported stopped before its app had drained');
  });

  it('still SIGKILLs the group at the stop timeout when the app drains for too long', async () => {
    const { stop, marker } = await machineRunning((app) => imageCommand(app), 20_000);
    const { tookMs } = await stop('1s');
    assert.ok(tookMs >= 900 && tookMs < 5000, `stopped after ${tookMs} ms`);
    assert.ok(marker('told'), 'the app was told to drain');
    assert.equal(marker('drained'), undefined);
    assert.throws(() => process.kill(marker('ready') as number, 0), 'the app outlived the stop timeout');
  });
});
