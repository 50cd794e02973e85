// The current team's apps with their newest and serving deployments, and each app's detail.
import { defineStore } from 'pinia';
import { ref } from 'vue';
import { allPages, api, enc, type Page } from '../lib/api.ts';
import type { App, Instance, LatestDeployments } from '../lib/types.ts';

export type AppInput = Partial<Omit<App, 'id' | 'team' | 'url' | 'sourceProblem' | 'createdAt' | 'updatedAt'>>;

export const useApps = defineStore('apps', () => {
  /** Per team slug. */
  const lists = ref<Record<string, App[]>>({});
  const latest = ref<Record<string, LatestDeployments>>({});
  const bySlug = ref<Record<string, App>>({});
  const instances = ref<Record<string, Instance[]>>({});

  async function loadTeam(team: string): Promise<App[]> {
    const all = await allPages<App>(`/api/teams/${enc(team)}/apps`);
    lists.value[team] = all;
    for (const a of all) bySlug.value[a.slug] = a;
    return all;
  }

  async function loadLatest(team: string) {
    const page = await api.get<Page<LatestDeployments>>(`/api/teams/${enc(team)}/latest-deployments`);
    for (const item of page.items) latest.value[item.app] = item;
    return page.items;
  }

  async function load(slug: string): Promise<App> {
    const app = await api.get<App>(`/api/apps/${enc(slug)}`);
    bySlug.value[slug] = app;
    return app;
  }

  async function loadInstances(slug: string): Promise<Instance[]> {
    const page = await api.get<Page<Instance>>(`/api/apps/${enc(slug)}/instances`);
    instances.value[slug] = page.items;
    return page.items;
  }

  async function create(team: string, input: AppInput): Promise<App> {
    const app = await api.post<App>(`/api/teams/${enc(team)}/apps`, input);
    bySlug.value[app.slug] = app;
    lists.value[team] = [...(lists.value[team] ?? []), app].sort((a, b) => a.slug.localeCompare(b.slug));
    return app;
  }

  async function update(slug: string, input: AppInput): Promise<App> {
    const app = await api.patch<App>(`/api/apps/${enc(slug)}`, input);
    bySlug.value[slug] = app;
    const list = lists.value[app.team];
    if (list) lists.value[app.team] = list.map((a) => (a.slug === slug ? app : a));
    return app;
  }

  async function remove(slug: string): Promise<void> {
    const team = bySlug.value[slug]?.team;
    await api.del(`/api/apps/${enc(slug)}`);
    delete bySlug.value[slug];
    delete latest.value[slug];
    if (team && lists.value[team]) lists.value[team] = lists.value[team].filter((a) => a.slug !== slug);
  }

  return { lists, latest, bySlug, instances, loadTeam, loadLatest, load, loadInstances, create, update, remove };
});
