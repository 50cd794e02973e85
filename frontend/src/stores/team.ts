// One team's people: members, pending invitations, and its audit log.
import { defineStore } from 'pinia';
import { ref } from 'vue';
import { api, enc, type Page } from '../lib/api.ts';
import type { AuditEvent, Invitation, Member, Role } from '../lib/types.ts';

export const useTeam = defineStore('team', () => {
  const members = ref<Member[]>([]);
  const invitations = ref<Invitation[]>([]);
  const audit = ref<AuditEvent[]>([]);
  const auditNext = ref<string | number | null>(null);

  const base = (team: string) => `/api/teams/${enc(team)}`;

  async function loadMembers(team: string) {
    members.value = (await api.get<Page<Member>>(`${base(team)}/members`)).items;
  }
  async function loadInvitations(team: string) {
    invitations.value = (await api.get<Page<Invitation>>(`${base(team)}/invitations`)).items;
  }
  async function invite(team: string, login: string, role: Role) {
    const inv = await api.post<Invitation>(`${base(team)}/invitations`, { login, role });
    invitations.value = [inv, ...invitations.value.filter((i) => i.id !== inv.id)];
    return inv;
  }
  async function revoke(team: string, id: string) {
    await api.del(`${base(team)}/invitations/${enc(id)}`);
    invitations.value = invitations.value.filter((i) => i.id !== id);
  }
  async function changeRole(team: string, login: string, role: Role) {
    const m = await api.patch<Member>(`${base(team)}/members/${enc(login)}`, { role });
    members.value = members.value.map((x) => (x.login === login ? { ...x, ...m } : x));
  }
  async function removeMember(team: string, login: string) {
    await api.del(`${base(team)}/members/${enc(login)}`);
    members.value = members.value.filter((x) => x.login !== login);
  }
  async function loadAudit(team: string, more = false) {
    const cursor = more && auditNext.value ? `&cursor=${enc(String(auditNext.value))}` : '';
    const page = await api.get<Page<AuditEvent>>(`${base(team)}/audit?limit=50${cursor}`);
    audit.value = more ? [...audit.value, ...page.items] : page.items;
    auditNext.value = page.next;
  }

  return { members, invitations, audit, auditNext, loadMembers, loadInvitations, invite, revoke, changeRole, removeMember, loadAudit };
});
