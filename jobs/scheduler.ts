// The scheduler process: registers repeatable work, and registers it again every few minutes so
// a flushed Redis gets its schedules back without a restart.
import { configOrExit } from '../backend/config.ts';
import { logger } from '../backend/lib/logger.ts';
import { closeQueues } from './queues.ts';
import { registerSchedules } from './schedules.ts';

const REFRESH_MS = 5 * 60_000;

const config = configOrExit();
const log = logger();
const connection = { url: config.redisUrl, maxRetriesPerRequest: null };

async function register() {
  try {
    const ids = await registerSchedules({ connection });
    log.debug({ schedules: ids }, 'schedules registered');
  } catch (err) {
    log.error({ err }, 'could not register schedules; will try again');
  }
}

await register();
log.info('scheduler started');
const timer = setInterval(() => void register(), REFRESH_MS);
const stop = async () => {
  clearInterval(timer);
  await closeQueues();
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
