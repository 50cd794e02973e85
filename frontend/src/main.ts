import { createApp, nextTick } from 'vue';
import { createPinia } from 'pinia';
import App from './App.vue';
import { router } from './router.ts';
import { onUnauthenticated } from './lib/api.ts';
import { useSession } from './stores/session.ts';
import './styles.css';

const app = createApp(App);
const pinia = createPinia();
app.use(pinia);
app.use(router);

// The session ended (signed out in another tab, expired): back to sign-in, then here again.
onUnauthenticated(() => {
  const session = useSession(pinia);
  if (!session.user) return;
  session.forget();
  const here = router.currentRoute.value;
  if (!here.meta.public) void router.replace({ name: 'signin', query: { next: here.fullPath } });
});

// Moving to another page moves focus to its content, as a page load would for a keyboard or
// screen-reader user; the first page keeps its own (the sign-in field's autofocus).
let firstPage = true;
router.afterEach(() => {
  if (firstPage) {
    firstPage = false;
    return;
  }
  void nextTick(() => document.getElementById('main')?.focus({ preventScroll: true }));
});

app.mount('#app');
