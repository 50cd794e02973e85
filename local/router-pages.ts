// The pages the router answers with itself, when it cannot hand a request to an app.
import { escapeHtml } from '../backend/lib/html.ts';

function page(title: string, message: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:15vh auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}code{background:#f2f2f2;padding:.1rem .3rem;border-radius:3px}</style></head>
<body><h1>${escapeHtml(title)}</h1><p>${message}</p><p><small>Rhone local router</small></p></body></html>
`;
}

export interface RouterPage {
  status: number;
  html: string;
}

export const notDeployedPage = (host: string): RouterPage => ({
  status: 404,
  html: page('No app here', `No app is deployed at <code>${escapeHtml(host || '(no Host header)')}</code>.`),
});

export const noHealthyMachinePage = (app: string): RouterPage => ({
  status: 503,
  html: page(
    'App unavailable',
    `<code>${escapeHtml(app)}</code> has no healthy machine right now: its machines are starting, stopped, or failing their health checks. Try again in a moment.`,
  ),
});

export const badGatewayPage = (app: string, reason: string): RouterPage => ({
  status: 502,
  html: page('Bad gateway', `<code>${escapeHtml(app)}</code> could not be reached: ${escapeHtml(reason)}.`),
});

/** A page as a raw HTTP/1.1 response, for sockets taken over by an upgrade. */
export function rawResponse(p: RouterPage): string {
  const body = Buffer.from(p.html);
  const reason = { 404: 'Not Found', 502: 'Bad Gateway', 503: 'Service Unavailable' }[p.status] ?? 'Error';
  return `HTTP/1.1 ${p.status} ${reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${p.html}`;
}
