import { TimestampedModel } from './BaseModel.ts';

export const PLANS = ['free', 'starter', 'pro', 'enterprise'] as const;
export type Plan = (typeof PLANS)[number];

export class Team extends TimestampedModel {
  static tableName = 'teams';

  id!: string;
  slug!: string;
  name!: string;
  personal!: boolean;
  plan!: Plan;
  stripeCustomerId!: string | null;
  stripeSubscriptionId!: string | null;
  subscriptionStatus!: string | null;
  /** When the latest unpaid invoice failed; null when nothing is owed. */
  pastDueSince!: Date | null;
  /** Monthly overage cap in cents; null: none. */
  spendCapCents!: number | null;
  /** When the latest invoice event applied (paid or failed) was created at Stripe: older ones are ignored. */
  invoiceEventAt!: Date | null;
}
