/** The REST client's deadline covers the whole call, not only an idle socket. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { KubeApiError, RestClient } from '../../src/kube/rest.js';

let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
});

async function clientFor(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<RestClient> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const access = { server: `http://127.0.0.1:${String(port)}`, tls: {}, headers: {} };
  return new RestClient({ source: 'test', namespace: undefined, access: () => Promise.resolve(access) }, 'portico-test');
}

describe('RestClient deadlines', () => {
  it('times out a call whose answer trickles in, though the socket is never idle for long', async () => {
    const client = await clientFor((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const timer = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(timer));
    });
    const error = await client.request('GET', '/api/v1/namespaces', { timeoutMs: 400 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KubeApiError);
    expect((error as KubeApiError).reason).toBe('Timeout');
  });

  it('answers normally within the deadline, and a caller abort is not reported as a timeout', async () => {
    const client = await clientFor((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"NamespaceList"}');
    });
    expect(await client.request<{ kind: string }>('GET', '/api/v1/namespaces', { timeoutMs: 5_000 })).toEqual({ kind: 'NamespaceList' });
    const aborted = new AbortController();
    aborted.abort(new Error('leadership ended'));
    const error = await client.request('GET', '/api/v1/namespaces', { signal: aborted.signal }).catch((e: unknown) => e);
    expect((error as KubeApiError).reason).not.toBe('Timeout');
  });
});
