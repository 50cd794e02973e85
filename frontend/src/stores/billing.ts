// A team's plan, billing state, usage for a period, and its notifications (quota and spend alerts).
import { defineStore } from 'pinia';
import { ref } from 'vue';
import { api, enc, type Page } from '../lib/api.ts';
import type { Billing, MeterName, Notification } from '../lib/types.ts';

export type { Billing, MeterName, Notification } from '../lib/types.ts';
export type Usage = Record<MeterName, number>;

export interface MeterReport {
  meter: MeterName;
  label: string;
  unit: string;
  used: number;
  included: number | null;
  overage: number;
  overageCents: number;
  percent: number | null;
  kind: 'unlimited' | 'hard' | 'overage';
}

export interface UsageReport {
  period: string;
  periodStart: string;
  periodEnd: string;
  elapsed: number;
  plan: { id: string; name: string; priceCents: number | null };
  meters: MeterReport[];
  cost: { baseCents: number; overageCents: number; totalCents: number; forecastCents: number; forecast: Usage };
  spendCap: { capCents: number | null; percent: number | null; reached: boolean };
  apps: { app: { id: string; slug: string; name: string }; usage: Usage }[];
  days: { date: string; usage: Usage }[];
  stripe: { configured: boolean };
}

export const useBilling = defineStore('billing', () => {
  const billing = ref<Record<string, Billing>>({});
  const usage = ref<Record<string, UsageReport>>({});
  const notifications = ref<Record<string, { items: Notification[]; unread: number }>>({});
  const base = (team: string) => `/api/teams/${enc(team)}`;

  async function loadBilling(team: string) {
    billing.value[team] = await api.get<Billing>(`${base(team)}/billing`);
    return billing.value[team];
  }
  async function loadUsage(team: string, period?: string) {
    const report = await api.get<UsageReport>(`${base(team)}/usage${period ? `?period=${enc(period)}` : ''}`);
    usage.value[team] = report;
    return report;
  }
  async function loadNotifications(team: string) {
    const page = await api.get<Page<Notification> & { unread: number }>(`${base(team)}/notifications?limit=20`);
    notifications.value[team] = { items: page.items, unread: page.unread };
    return page;
  }
  async function markAllRead(team: string) {
    await api.post(`${base(team)}/notifications/read-all`);
    const n = notifications.value[team];
    if (n) notifications.value[team] = { items: n.items.map((i) => ({ ...i, read: true })), unread: 0 };
  }
  /**
   * Local mode, or a team already subscribed: the plan changes here (a subscription is swapped by
   * Stripe, prorated; back to Free at the period's end). Otherwise: a Checkout page to go to.
   */
  async function changePlan(team: string, plan: string): Promise<{ redirect?: string; message?: string }> {
    const b = billing.value[team] ?? (await loadBilling(team));
    if (b.changePlanVia === 'checkout') return { redirect: (await api.post<{ url: string }>(`${base(team)}/billing/checkout`, { plan })).url };
    const { message, ...next } = await api.put<Billing & { message?: string }>(`${base(team)}/billing/plan`, { plan });
    billing.value[team] = next;
    return { message };
  }
  /** Stripe's customer portal: payment method and invoices. */
  async function openPortal(team: string): Promise<string> {
    return (await api.post<{ url: string }>(`${base(team)}/billing/portal`)).url;
  }
  async function setSpendCap(team: string, capCents: number | null) {
    await api.put(`${base(team)}/billing/spend-cap`, { capCents });
    await loadUsage(team);
  }

  return { billing, usage, notifications, loadBilling, loadUsage, loadNotifications, markAllRead, changePlan, openPortal, setSpendCap };
});
