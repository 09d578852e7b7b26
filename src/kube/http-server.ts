/** The small HTTP server behind /healthz, /readyz and /metrics. */
import type { Server } from 'node:http';
import { http } from './node-http.js';

export type Check = () => boolean;

export interface ServeOptions {
  host: string | undefined;
  port: number;
  /** Liveness checks, all must pass for /healthz. */
  health?: Record<string, Check>;
  /** Readiness checks, all must pass for /readyz. */
  ready?: Record<string, Check>;
  /** What /metrics serves (a prom-client Registry, or several read together). */
  registry?: MetricsSource;
}

export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

function runChecks(checks: Record<string, Check>): { ok: boolean; body: string } {
  const lines: string[] = [];
  let ok = true;
  for (const [name, check] of Object.entries(checks)) {
    let passed = false;
    try {
      passed = check();
    } catch {
      passed = false;
    }
    ok &&= passed;
    lines.push(`[${passed ? '+' : '-'}]${name} ${passed ? 'ok' : 'failed'}`);
  }
  return { ok, body: `${lines.join('\n')}\n${ok ? 'ok' : 'failed'}\n` };
}

export async function serve(options: ServeOptions): Promise<Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if ((path === '/healthz' || path === '/livez') && options.health) {
      const { ok, body } = runChecks(options.health);
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(body);
    } else if (path === '/readyz' && options.ready) {
      const { ok, body } = runChecks(options.ready);
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(body);
    } else if (path === '/metrics' && options.registry) {
      const registry = options.registry;
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (error: unknown) => res.writeHead(500).end(String(error)),
      );
    } else {
      res.writeHead(404).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  return server;
}
