import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router';
import { useSession } from './stores/session.ts';

const routes: RouteRecordRaw[] = [
  { path: '/signin', name: 'signin', component: () => import('./views/SignIn.vue'), meta: { public: true, title: 'Sign in' } },
  { path: '/', name: 'home', component: { render: () => null } },
  { path: '/teams/new', name: 'team-new', component: () => import('./views/TeamCreate.vue'), meta: { title: 'New team' } },
  { path: '/teams/:team', name: 'apps', component: () => import('./views/AppsList.vue'), meta: { title: 'Apps' } },
  { path: '/teams/:team/apps/new', name: 'app-new', component: () => import('./views/AppCreate.vue'), meta: { title: 'New app' } },
  { path: '/teams/:team/members', name: 'members', component: () => import('./views/TeamMembers.vue'), meta: { title: 'Members' } },
  { path: '/teams/:team/audit', name: 'audit', component: () => import('./views/TeamAudit.vue'), meta: { title: 'Audit log' } },
  { path: '/teams/:team/billing', name: 'billing', component: () => import('./views/TeamBilling.vue'), meta: { title: 'Usage & billing' } },
  { path: '/teams/:team/settings', name: 'team-settings', component: () => import('./views/TeamSettings.vue'), meta: { title: 'Team settings' } },
  {
    path: '/apps/:app',
    component: () => import('./views/AppLayout.vue'),
    children: [
      { path: '', name: 'app', component: () => import('./views/AppOverview.vue'), meta: { title: 'Overview' } },
      { path: 'deployments', name: 'app-deployments', component: () => import('./views/AppDeployments.vue'), meta: { title: 'Deployments' } },
      { path: 'env', name: 'app-env', component: () => import('./views/AppEnv.vue'), meta: { title: 'Environment' } },
      { path: 'domains', name: 'app-domains', component: () => import('./views/AppDomains.vue'), meta: { title: 'Domains' } },
      { path: 'settings', name: 'app-settings', component: () => import('./views/AppSettings.vue'), meta: { title: 'Settings' } },
    ],
  },
  // The address Rhone's commit statuses on GitHub link to.
  { path: '/apps/:app/deployments/:id', redirect: (to) => ({ name: 'deployment', params: { id: to.params.id } }) },
  { path: '/deployments/:id', name: 'deployment', component: () => import('./views/DeploymentView.vue'), meta: { title: 'Deployment' } },
  { path: '/account/tokens', name: 'tokens', component: () => import('./views/ApiTokens.vue'), meta: { title: 'API tokens' } },
  { path: '/invitations', name: 'invitations', component: () => import('./views/MyInvitations.vue'), meta: { title: 'Invitations' } },
  { path: '/:pathMatch(.*)*', name: 'not-found', component: () => import('./views/NotFound.vue'), meta: { public: true, title: 'Not found' } },
];

export const router = createRouter({ history: createWebHistory(), routes });

router.beforeEach(async (to) => {
  const session = useSession();
  if (!session.loaded) await session.load();
  if (!session.user && !to.meta.public) return { name: 'signin', query: to.fullPath !== '/' ? { next: to.fullPath } : {} };
  if (session.user && to.name === 'signin') return typeof to.query.next === 'string' && to.query.next.startsWith('/') ? to.query.next : '/';
  if (typeof to.params.team === 'string') session.selectTeam(to.params.team);
  if (to.name === 'home') {
    const team = session.team;
    return team ? { name: 'apps', params: { team: team.slug } } : { name: 'team-new' };
  }
  return true;
});

router.afterEach((to) => {
  const title = to.meta.title as string | undefined;
  document.title = title ? `${title} · Rhone` : 'Rhone';
});
