/**
 * A loopback HTTP proxy in front of moto that answers some requests itself with AWS's own error
 * documents (Query protocol XML), so the real SDK parses real `Throttling` and 5xx responses.
 */
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WireFault {
  status: number;
  code: string;
  message: string;
}

export interface FaultProxy {
  endpoint: string;
  /** Decides per request (by its `Action`), `undefined` forwards it to moto. */
  decide: (action: string) => WireFault | undefined;
  readonly actions: string[];
  close(): Promise<void>;
}

function body(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const state: FaultProxy = { endpoint: '', decide: () => undefined, actions: [], close: () => Promise.resolve() };
  const server: Server = createServer((req, res) => {
    void body(req).then((payload) => {
      const action = new URLSearchParams(payload.toString()).get('Action') ?? '';
      state.actions.push(action);
      const fault = state.decide(action);
      if (fault !== undefined) {
        res.writeHead(fault.status, { 'content-type': 'text/xml' });
        res.end(`<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error><Type>${fault.status >= 500 ? 'Receiver' : 'Sender'}</Type><Code>${fault.code}</Code><Message>${fault.message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>`);
        return;
      }
      const forward = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      forward.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      forward.end(payload);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.endpoint = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
  state.close = () => new Promise((resolve) => server.close(() => resolve()));
  return state;
}
