// Who is signed in, their teams and roles, and which team the dashboard is showing.
import { defineStore } from 'pinia';
import { computed, ref } from 'vue';
import { api, ApiError, csrfToken } from '../lib/api.ts';
import type { Action, TeamSummary, User } from '../lib/types.ts';

const TEAM_KEY = 'rhone.team';

function remembered(): string | null {
  try {
    return globalThis.localStorage?.getItem(TEAM_KEY) ?? null;
  } catch {
    return null;
  }
}

export const useSession = defineStore('session', () => {
  const user = ref<User | null>(null);
  const teams = ref<TeamSummary[]>([]);
  const teamSlug = ref<string | null>(remembered());
  const loaded = ref(false);
  const providers = ref<{ dev: boolean; github: boolean } | null>(null);

  const team = computed(() => teams.value.find((t) => t.slug === teamSlug.value) ?? teams.value[0] ?? null);

  async function load(): Promise<User | null> {
    // Signing in sets the CSRF cookie beside the session's: without it there is no session to
    // ask about (and the browser would log the 401 as an error).
    if (typeof document !== 'undefined' && !csrfToken()) {
      forget();
      loaded.value = true;
      return null;
    }
    try {
      const me = await api.get<{ user: User; teams: TeamSummary[] }>('/api/me');
      user.value = me.user;
      teams.value = me.teams;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401) throw err;
      user.value = null;
      teams.value = [];
    } finally {
      loaded.value = true;
    }
    return user.value;
  }

  async function loadProviders() {
    providers.value ??= await api.get<{ dev: boolean; github: boolean }>('/auth/providers');
    return providers.value;
  }

  async function signInDev(login: string) {
    await api.post('/auth/dev', { login });
    await load();
  }

  async function signOut() {
    try {
      await api.post('/auth/logout');
    } finally {
      forget();
    }
  }

  /** After a 401 or sign-out: nothing of the previous user stays in memory. */
  function forget() {
    user.value = null;
    teams.value = [];
  }

  function selectTeam(slug: string) {
    teamSlug.value = slug;
    try {
      globalThis.localStorage?.setItem(TEAM_KEY, slug);
    } catch {
      // Private mode: the choice lasts for this page only.
    }
  }

  function teamBySlug(slug: string | null | undefined): TeamSummary | null {
    return teams.value.find((t) => t.slug === slug) ?? null;
  }

  /** Whether the user's role in `slug` (default: the current team) allows `action` (backend/policies). */
  function can(action: Action, slug?: string | null): boolean {
    const t = slug ? teamBySlug(slug) : team.value;
    return Boolean(t?.can.includes(action));
  }

  return { user, teams, teamSlug, team, loaded, providers, load, loadProviders, signInDev, signOut, forget, selectTeam, teamBySlug, can };
});
