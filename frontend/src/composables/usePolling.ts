// Re-runs `load` every `ms` while the page is visible (and once at once); stops on unmount.
import { onBeforeUnmount, onMounted } from 'vue';

export function usePolling(load: () => Promise<unknown> | void, ms: number) {
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;
  async function tick() {
    if (stopped) return;
    if (typeof document === 'undefined' || document.visibilityState !== 'hidden') {
      try {
        await load();
      } catch {
        // The page shows its own error state; polling goes on.
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  }
  onMounted(tick);
  onBeforeUnmount(() => {
    stopped = true;
    if (timer) clearTimeout(timer);
  });
}
