/** TCP connect and HTTP(S) GET probes against one external address. */
import { connect } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { http } from '../../kube/node-http.js';
import type { HealthSettings } from './spec.js';
import type { ProbeTarget, Prober } from './health.js';

export function codeExpected(code: number, expected: HealthSettings['expectedCodes']): boolean {
  return expected.some(([lo, hi]) => code >= lo && code <= hi);
}

function hostPart(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

export const netProber: Prober = {
  probe(target: ProbeTarget, settings: HealthSettings, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (settings.protocol === 'TCP') {
      return new Promise((resolve) => {
        const socket = connect({ host: target.address, port: settings.port });
        const finish = (ok: boolean): void => {
          signal.removeEventListener('abort', onAbort);
          socket.destroy();
          resolve(ok);
        };
        const onAbort = (): void => finish(false);
        signal.addEventListener('abort', onAbort, { once: true });
        socket.once('connect', () => finish(true));
        socket.once('error', () => finish(false));
      });
    }
    const request = settings.protocol === 'HTTPS' ? httpsRequest : http.request;
    return new Promise((resolve) => {
      const req = request(
        {
          host: target.address,
          port: settings.port,
          path: settings.path,
          method: 'GET',
          signal,
          agent: false,
          // The Host header (and SNI) a client would send: the hostname, else the address.
          headers: { host: `${target.hostname ?? hostPart(target.address)}:${String(settings.port)}`, 'user-agent': 'portico-health-check' },
          ...(settings.protocol === 'HTTPS' ? { servername: target.hostname, rejectUnauthorized: false } : {}),
        },
        (res) => {
          res.resume();
          resolve(codeExpected(res.statusCode ?? 0, settings.expectedCodes));
        },
      );
      req.once('error', () => resolve(false));
      req.end();
    });
  },
};
