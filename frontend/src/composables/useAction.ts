// One user action (a form submit, a button): whether it is under way, its error, field errors,
// and a toast saying how it ended.
import { ref } from 'vue';
import { ApiError } from '../lib/api.ts';
import { useToasts } from '../stores/toasts.ts';

export function useAction<A extends unknown[], R>(
  run: (...args: A) => Promise<R>,
  messages: { success?: string | ((r: R) => string); toastErrors?: boolean } = {},
) {
  const pending = ref(false);
  const error = ref<string | null>(null);
  const fields = ref<Record<string, string>>({});
  const toasts = useToasts();

  async function execute(...args: A): Promise<R | undefined> {
    if (pending.value) return undefined;
    pending.value = true;
    error.value = null;
    fields.value = {};
    try {
      const result = await run(...args);
      const text = typeof messages.success === 'function' ? messages.success(result) : messages.success;
      if (text) toasts.success(text);
      return result;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      error.value = message;
      if (err instanceof ApiError) fields.value = err.fields;
      // Field errors show beside their fields; other failures also get a toast unless the form shows them.
      if (messages.toastErrors !== false && Object.keys(fields.value).length === 0) toasts.error(message);
      return undefined;
    } finally {
      pending.value = false;
    }
  }

  return { pending, error, fields, execute };
}
