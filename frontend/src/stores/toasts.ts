// Short messages saying how an action ended. Errors stay until dismissed; successes fade.
import { defineStore } from 'pinia';
import { ref } from 'vue';

export interface Toast {
  id: number;
  kind: 'success' | 'error' | 'info';
  text: string;
}

export const useToasts = defineStore('toasts', () => {
  const items = ref<Toast[]>([]);
  let next = 1;

  function push(kind: Toast['kind'], text: string, ttlMs = kind === 'error' ? 0 : 4000) {
    const id = next++;
    items.value.push({ id, kind, text });
    if (ttlMs > 0) setTimeout(() => dismiss(id), ttlMs);
    return id;
  }

  function dismiss(id: number) {
    items.value = items.value.filter((t) => t.id !== id);
  }

  return { items, push, dismiss, success: (t: string) => push('success', t), error: (t: string) => push('error', t), info: (t: string) => push('info', t) };
});
