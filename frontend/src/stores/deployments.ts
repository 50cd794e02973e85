// Deployments: an app's history, one deployment's detail, and the actions on them.
import { defineStore } from 'pinia';
import { ref } from 'vue';
import { api, enc, type Page } from '../lib/api.ts';
import type { Deployment } from '../lib/types.ts';

export const useDeployments = defineStore('deployments', () => {
  const byId = ref<Record<string, Deployment>>({});
  /** Per app slug: ids newest first, and the cursor of the next older page. */
  const lists = ref<Record<string, { ids: string[]; next: string | number | null }>>({});

  function remember(d: Deployment): Deployment {
    byId.value[d.id] = { ...byId.value[d.id], ...d };
    const list = lists.value[d.app];
    if (list && !list.ids.includes(d.id)) {
      list.ids.unshift(d.id);
      list.ids.sort((a, b) => (byId.value[b]?.number ?? 0) - (byId.value[a]?.number ?? 0));
    }
    return byId.value[d.id];
  }

  async function loadList(app: string, more = false) {
    const current = lists.value[app];
    const cursor = more && current?.next ? `&cursor=${enc(String(current.next))}` : '';
    const page = await api.get<Page<Deployment>>(`/api/apps/${enc(app)}/deployments?limit=20${cursor}`);
    for (const d of page.items) byId.value[d.id] = d;
    const ids = page.items.map((d) => d.id);
    lists.value[app] = { ids: more && current ? [...current.ids, ...ids.filter((id) => !current.ids.includes(id))] : ids, next: page.next };
    return page.items;
  }

  async function load(id: string) {
    return remember(await api.get<Deployment>(`/api/deployments/${enc(id)}`));
  }

  async function deploy(app: string, ref?: string) {
    return remember(await api.post<Deployment>(`/api/apps/${enc(app)}/deploy`, ref ? { ref } : {}));
  }

  async function cancel(id: string) {
    return remember(await api.post<Deployment>(`/api/deployments/${enc(id)}/cancel`));
  }

  async function rollback(id: string) {
    return remember(await api.post<Deployment>(`/api/deployments/${enc(id)}/rollback`));
  }

  /** A status event from the live stream, applied before the next fetch confirms it. */
  function applyStatus(id: string, status: Deployment['status'], stage: Deployment['stage'], reason?: string | null) {
    const d = byId.value[id];
    if (d) byId.value[id] = { ...d, status, stage, reason: reason ?? d.reason };
  }

  const ofApp = (app: string) => (lists.value[app]?.ids ?? []).map((id) => byId.value[id]).filter(Boolean);

  return { byId, lists, remember, loadList, load, deploy, cancel, rollback, applyStatus, ofApp };
});
