// Run by upload-usage.int.test.ts as a separate process that the test SIGKILLs in the middle of an
// upload. Usage: node --import tsx test/upload-usage-child.ts <now ISO> <concurrency>, with the test
// database and STRIPE_SECRET_KEY / STRIPE_API_URL (the fake Stripe) in the environment.
import { pino } from 'pino';
import { getConfig } from '../backend/config.ts';
import { db } from '../backend/db.ts';
import { stripeClient } from '../backend/billing/stripe.ts';
import { uploadUsage } from '../backend/billing/upload-usage.ts';

const [now, concurrency] = process.argv.slice(2);
await uploadUsage(db(), stripeClient(getConfig()), { log: pino({ level: 'silent' }), now: new Date(now), concurrency: Number(concurrency) });
process.exit(0);
