/** The REST client's deadline covers the whole call, not only an idle socket. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { generateCertificates } from '../../hack/certificates.js';
import type { ClusterTls } from '../../src/kube/kubeconfig.js';
import { KubeApiError, RestClient } from '../../src/kube/rest.js';

let server: Server | undefined;

afterEach(async () => {
  const running = server;
  server = undefined;
  if (!running) return;
  running.closeAllConnections();
  await new Promise((resolve) => running.close(resolve));
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

describe('RestClient answers', () => {
  it('sends the query and the server URL path, and reports API errors with their reason and Retry-After', async () => {
    const seen: string[] = [];
    server = createServer((req, res) => {
      seen.push(req.url ?? '');
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '3' }).end('{"kind":"Status","reason":"TooManyRequests","message":"slow down"}');
    });
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const access = { server: `http://127.0.0.1:${String(port)}/prefix/`, tls: {}, headers: {} };
    const client = new RestClient({ source: 'test', namespace: undefined, access: () => Promise.resolve(access) }, 'portico-test');
    const error = await client.request('GET', '/api/v1/services', { query: { labelSelector: 'a in (b,c)', limit: 500, continue: undefined } }).catch((e: unknown) => e);
    expect(seen).toEqual(['/prefix/api/v1/services?labelSelector=a+in+%28b%2Cc%29&limit=500']);
    expect(error).toBeInstanceOf(KubeApiError);
    expect(error).toMatchObject({ status: 429, reason: 'TooManyRequests', retryAfterMs: 3000, retryable: true });
  });

  it('reports an answer cut off mid-body, and a 2xx body that is not JSON, as retryable errors', async () => {
    const client = await clientFor((req, res) => {
      if (req.url?.startsWith('/cut')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"kind":');
        setTimeout(() => res.socket?.destroy(), 20);
      } else res.writeHead(200, { 'content-type': 'application/json' }).end('<html>proxy error</html>');
    });
    const cut = await client.request('GET', '/cut').catch((e: unknown) => e);
    expect(cut).toMatchObject({ reason: 'ConnectionFailed', retryable: true });
    const html = await client.request('GET', '/html').catch((e: unknown) => e);
    expect(html).toMatchObject({ reason: 'InvalidResponse', retryable: true });
  });

  it('after close, refuses calls at once without opening a connection (a stopped controller leaves none behind)', async () => {
    let requests = 0;
    const client = await clientFor((_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    await client.request('GET', '/api');
    client.close();
    await expect(client.request('GET', '/api')).rejects.toMatchObject({ reason: 'ClientClosed' });
    await expect(client.watch('/api/v1/services', {}, () => undefined, new AbortController().signal)).rejects.toMatchObject({ reason: 'ClientClosed' });
    expect(requests).toBe(1);
  });

  it('refuses calls made in the same tick as close, before they reach a socket (no connection outlives a stopped term)', async () => {
    let requests = 0;
    let connections = 0;
    const client = await clientFor((_req, res) => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    server?.on('connection', () => connections++);
    await client.request('GET', '/api');
    // Both calls have started, and wait for their connection, when the client closes.
    const call = client.request('GET', '/api');
    const watch = client.watch('/api/v1/services', {}, () => undefined, new AbortController().signal);
    client.close();
    await expect(call).rejects.toMatchObject({ reason: 'ClientClosed' });
    await expect(watch).rejects.toMatchObject({ reason: 'ClientClosed' });
    expect({ requests, connections }).toEqual({ requests: 1, connections: 1 });
  });

  it('reports a refused connection as ConnectionFailed', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const address = probe.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    await new Promise((resolve) => probe.close(resolve));
    const access = { server: `http://127.0.0.1:${String(port)}`, tls: {}, headers: {} };
    const client = new RestClient({ source: 'test', namespace: undefined, access: () => Promise.resolve(access) }, 'portico-test');
    expect(await client.request('GET', '/api').catch((e: unknown) => e)).toMatchObject({ reason: 'ConnectionFailed', retryable: true });
  });
});

describe('RestClient TLS', () => {
  it('trusts only the configured CA (unless verification is off) and presents the client certificate', async () => {
    const dirs = await Promise.all([mkdtemp(join(tmpdir(), 'portico-tls-')), mkdtemp(join(tmpdir(), 'portico-tls-'))]);
    let tlsServer: ReturnType<typeof createTlsServer> | undefined;
    try {
      await Promise.all(dirs.map((dir) => generateCertificates(dir)));
      const [ours, other] = await Promise.all(dirs.map(async (dir) => Object.fromEntries(await Promise.all(['ca.crt', 'apiserver.crt', 'apiserver.key', 'admin.crt', 'admin.key'].map(async (f) => [f, await readFile(join(dir, f))] as const)))));
      // Like the API server: a client certificate is asked for, and anonymous calls are allowed.
      tlsServer = createTlsServer({ cert: ours?.['apiserver.crt'], key: ours?.['apiserver.key'], ca: ours?.['ca.crt'], requestCert: true, rejectUnauthorized: false }, (req, res) => {
        // Without a client certificate the peer certificate is an empty object.
        const subject = (req.socket as TLSSocket).getPeerCertificate().subject as PeerCertificate['subject'] | undefined;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ user: subject?.CN ?? null }));
      });
      const listening = tlsServer;
      await new Promise<void>((resolve) => listening.listen(0, '127.0.0.1', resolve));
      const address = tlsServer.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      const call = (tls: ClusterTls): Promise<unknown> => {
        const access = { server: `https://127.0.0.1:${String(port)}`, tls, headers: {} };
        const client = new RestClient({ source: 'test', namespace: undefined, access: () => Promise.resolve(access) }, 'portico-test');
        return client.request('GET', '/api', { timeoutMs: 5_000 }).catch((e: unknown) => e).finally(() => client.close());
      };
      expect(await call({ ca: ours?.['ca.crt'], cert: ours?.['admin.crt'], key: ours?.['admin.key'] })).toEqual({ user: 'portico-admin' });
      expect(await call({ ca: ours?.['ca.crt'] })).toEqual({ user: null });
      const untrusted = await call({ ca: other?.['ca.crt'], cert: ours?.['admin.crt'], key: ours?.['admin.key'] });
      expect(untrusted).toMatchObject({ reason: 'ConnectionFailed' });
      expect((untrusted as Error).message).toMatch(/certificate/i);
      expect(await call({ ca: other?.['ca.crt'], cert: other?.['admin.crt'], key: other?.['admin.key'], rejectUnauthorized: false })).toEqual({ user: 'portico-admin' });
      // A client key that cannot be read fails the call the same retryable way as a failed handshake.
      const unreadable = await call({ ca: ours?.['ca.crt'], cert: ours?.['admin.crt'], key: Buffer.from('not a key') });
      expect(unreadable).toBeInstanceOf(KubeApiError);
      expect(unreadable).toMatchObject({ reason: 'ConnectionFailed', retryable: true });
      expect((unreadable as Error).message).toMatch(/^TLS material from test: /);
    } finally {
      const running = tlsServer;
      running?.closeAllConnections();
      if (running) await new Promise((resolve) => running.close(resolve));
      await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    }
  });
});

describe('RestClient watches', () => {
  const event = (name: string): string => `${JSON.stringify({ type: 'ADDED', object: { metadata: { name } } })}\n`;

  it('delivers events split anywhere across chunks, multi-byte characters included, and the last one without a newline', async () => {
    const names = ['plain', 'naïve-ünïcödé', '名前', 'emoji-🚀'];
    const bytes = Buffer.from(names.slice(0, -1).map(event).join('') + event(names.at(-1) ?? '').trimEnd());
    const client = await clientFor((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // One byte at a time: every boundary, including inside a UTF-8 sequence, is crossed.
      let i = 0;
      const timer = setInterval(() => {
        if (i < bytes.length) res.write(bytes.subarray(i, ++i));
        else {
          clearInterval(timer);
          res.end();
        }
      }, 0);
    });
    const seen: string[] = [];
    await client.watch<{ metadata: { name: string } }>('/api/v1/services', {}, (e) => seen.push(e.object.metadata.name), new AbortController().signal);
    expect(seen).toEqual(names);
  });

  it('resolves when aborted, rejects with WatchBroken when the stream breaks, and passes API errors through', async () => {
    const client = await clientFor((req, res) => {
      if (req.url?.startsWith('/forbidden')) {
        res.writeHead(403, { 'content-type': 'application/json' }).end('{"kind":"Status","reason":"Forbidden","message":"no"}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(event('first'));
      if (req.url?.startsWith('/broken')) setTimeout(() => res.socket?.destroy(), 20);
    });
    const aborter = new AbortController();
    const seen: string[] = [];
    const open = client.watch<{ metadata: { name: string } }>('/open', {}, (e) => {
      seen.push(e.object.metadata.name);
      aborter.abort();
    }, aborter.signal);
    await expect(open).resolves.toBeUndefined();
    expect(seen).toEqual(['first']);
    await expect(client.watch('/broken', {}, () => undefined, new AbortController().signal)).rejects.toMatchObject({ reason: 'WatchBroken' });
    await expect(client.watch('/forbidden', {}, () => undefined, new AbortController().signal)).rejects.toMatchObject({ status: 403, reason: 'Forbidden' });
  });

  it('stops a watch whose handler throws, with WatchBroken', async () => {
    const client = await clientFor((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(event('a') + event('b'));
    });
    const seen: string[] = [];
    const watching = client.watch<{ metadata: { name: string } }>('/w', {}, (e) => {
      seen.push(e.object.metadata.name);
      throw new Error('handler failed');
    }, new AbortController().signal);
    await expect(watching).rejects.toMatchObject({ reason: 'WatchBroken' });
    expect(seen).toEqual(['a']);
  });
});
