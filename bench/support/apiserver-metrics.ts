/**
 * The API server's own view of the load: `apiserver_request_total` and the summed
 * `apiserver_request_duration_seconds` by verb and resource, read from /metrics before and
 * after a phase. Phases run one after another, so the difference belongs to that phase
 * (plus the benchmark's own few list/watch calls).
 */
import { request } from 'node:https';
import type { KubeConfig } from '../../src/kube/kubeconfig.js';

export interface ApiServerSample {
  /** `VERB resource[/subresource] code` -> count */
  requests: Record<string, number>;
  /** `VERB resource[/subresource]` -> seconds spent in the API server */
  seconds: Record<string, number>;
}

function labels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const match of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[match[1] ?? ''] = match[2] ?? '';
  return out;
}

export function parseApiServerMetrics(text: string): ApiServerSample {
  const sample: ApiServerSample = { requests: {}, seconds: {} };
  for (const line of text.split('\n')) {
    const match = /^(apiserver_request_total|apiserver_request_duration_seconds_sum)\{([^}]*)\} (\S+)/.exec(line);
    if (!match?.[1] || match[2] === undefined || match[3] === undefined) continue;
    const l = labels(match[2]);
    const resource = `${l['resource'] ?? ''}${l['subresource'] ? `/${l['subresource']}` : ''}`;
    if (!resource) continue;
    const value = Number(match[3]);
    if (match[1] === 'apiserver_request_total') {
      const key = `${l['verb'] ?? '?'} ${resource} ${l['code'] ?? '?'}`;
      sample.requests[key] = (sample.requests[key] ?? 0) + value;
    } else {
      const key = `${l['verb'] ?? '?'} ${resource}`;
      sample.seconds[key] = (sample.seconds[key] ?? 0) + value;
    }
  }
  return sample;
}

export async function scrapeApiServer(kc: KubeConfig): Promise<ApiServerSample> {
  const { server, tls, headers } = await kc.access();
  const url = new URL('/metrics', server);
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(url, { ...tls, headers, method: 'GET', timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode === 200) resolve(body);
        else reject(new Error(`GET /metrics: ${String(res.statusCode)}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error('GET /metrics timed out')));
    req.on('error', reject);
    req.end();
  });
  return parseApiServerMetrics(text);
}

/** after - before, dropping zeros; values rounded. */
export function diffApiServer(before: ApiServerSample, after: ApiServerSample): ApiServerSample {
  const diff = (a: Record<string, number>, b: Record<string, number>, digits: number): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const [key, value] of Object.entries(b)) {
      const d = value - (a[key] ?? 0);
      if (d > 1e-9) out[key] = Number(d.toFixed(digits));
    }
    return Object.fromEntries(Object.entries(out).sort(([, x], [, y]) => y - x));
  };
  return { requests: diff(before.requests, after.requests, 0), seconds: diff(before.seconds, after.seconds, 3) };
}
