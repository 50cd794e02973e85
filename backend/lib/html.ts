const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** A small page for the browser flows that end outside the dashboard (sign-in, installing the App). */
export function htmlPage(
  ctx: { status: number; type: string; body: unknown },
  status: number,
  title: string,
  message: string,
  links: [href: string, text: string][] = [['/', 'Back to Rhone']],
): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = `<!doctype html><meta charset="utf-8"><title>${escapeHtml(title)} · Rhone</title>
<body style="font-family:system-ui;max-width:36rem;margin:4rem auto;padding:0 1rem">
<h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p><p>${links.map(([href, text]) => `<a href="${escapeHtml(href)}">${escapeHtml(text)}</a>`).join(' · ')}</p></body>`;
}
