// The api serving a live log is SIGKILLed mid-stream: the viewer reconnects to another api with
// the last id it saw and gets the rest, without a gap or a duplicate, up to the end of the stream.
import assert from 'node:assert/strict';
import { apiProcess } from '../support/api-process.ts';
import { SseClient } from '../support/sse.ts';
import { FaultWorld, figure } from './world.ts';

describe('faults: the api killed mid-stream', function () {
  this.timeout(60_000);
  let world: FaultWorld;

  beforeEach(async () => {
    world = await new FaultWorld().start();
    await world.createApp();
  });
  afterEach(async () => world.close());

  it('the viewer resumes on another api with no gap or duplicate', async () => {
    // Lines keep coming after the kill, while no api streams to the viewer.
    world.commitBuild('echo one && sleep 1 && echo two && sleep 1 && echo three');
    world.startWorker();
    const doomed = await apiProcess();
    world.children.push(doomed.child);
    const cookie = [...world.ada.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const id = await world.deploy();
    const first = await SseClient.connect(`${doomed.url}/api/deployments/${id}/events`, { headers: { cookie } });
    assert.equal(first.status, 200, first.body);
    await first.waitFor((c) => c.events.some((e) => e.data.includes('"building"')), 30_000, 'the build to start');
    doomed.child.kill('SIGKILL');
    await first.closed;
    const killedAt = Date.now();
    const lastId = first.lastId();
    assert.ok(lastId, 'the first stream had ids');

    const second = await SseClient.connect(`${world.server.url}/api/deployments/${id}/events`, { headers: { cookie }, lastEventId: lastId });
    assert.equal(second.status, 200, second.body);
    const resumedIn = Date.now() - killedAt;
    await second.waitFor((c) => c.done, 60_000, 'the stream to end');

    const seen = [...first.events, ...second.events].map((e) => e.seq);
    const stored = await world.storedSeqs(id);
    assert.deepEqual(seen, stored, 'every stored event once, in order');
    assert.deepEqual(
      stored,
      stored.map((_, i) => i + 1),
    );
    assert.ok(
      second.events.some((e) => e.data.includes('"live"')),
      'the resumed stream saw the deployment go live',
    );
    assert.ok(second.events.length > 0 && first.events.length > 0);
    figure(
      `api killed after seq ${lastId} of ${stored.length}: resumed in ${resumedIn} ms, ${second.events.length} events after the kill, none lost or repeated`,
    );
  });
});
