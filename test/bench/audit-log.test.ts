import { appendFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { countByKind, createAuditLog, isLease, type AuditLog } from '../../bench/support/audit-log.js';

const CONTROLLER = 'portico-controller/0.1.0 (host-42)';

interface Line {
  id: string;
  stage: string;
  verb: string;
  at: string;
  resource: string;
  subresource?: string;
  agent?: string;
  code?: number;
}

function line(l: Line): string {
  return `${JSON.stringify({
    kind: 'Event',
    level: 'Metadata',
    auditID: l.id,
    stage: l.stage,
    verb: l.verb,
    userAgent: l.agent ?? CONTROLLER,
    requestURI: '/x',
    objectRef: { resource: l.resource, ...(l.subresource ? { subresource: l.subresource } : {}) },
    responseStatus: { code: l.code ?? 200 },
    requestReceivedTimestamp: l.at,
    stageTimestamp: l.at,
  })}\n`;
}

const t = (seconds: number): string => `2026-11-30T23:00:${String(seconds).padStart(2, '0')}.123456Z`;
const ms = (seconds: number): number => Date.parse(t(seconds));
const controller = (agent: string): boolean => agent.startsWith('portico-controller/') && agent.endsWith('(host-42)');

let log: AuditLog | undefined;
afterEach(async () => {
  await log?.close();
  log = undefined;
});

describe('the audit log as a request counter', () => {
  it('counts a watch once, at its start, and a refused watch at its end', async () => {
    log = await createAuditLog('blocking', (agent) => agent.startsWith('portico-controller/'));
    await appendFile(
      log.path,
      line({ id: 'w1', stage: 'ResponseStarted', verb: 'watch', at: t(1), resource: 'services' }) +
        line({ id: 'l1', stage: 'ResponseComplete', verb: 'list', at: t(1), resource: 'services' }) +
        // The watch ends 50 s later: not activity then.
        line({ id: 'w1', stage: 'ResponseComplete', verb: 'watch', at: t(1), resource: 'services' }) +
        line({ id: 'w2', stage: 'ResponseComplete', verb: 'watch', at: t(5), resource: 'nodes', code: 410 }),
    );
    await log.poll();
    const records = log.records(controller, 0);
    expect(records.map((r) => `${r.verb} ${r.resource} ${String(r.at - ms(0))}`)).toEqual(['watch services 1000', 'list services 1000', 'watch nodes 5000']);
  });

  it('keeps Lease requests apart, names subresources, and keeps only the agents asked for', async () => {
    log = await createAuditLog('blocking', (agent) => agent.startsWith('portico-controller/'));
    await appendFile(
      log.path,
      line({ id: 'a', stage: 'ResponseComplete', verb: 'update', at: t(2), resource: 'leases' }) +
        line({ id: 'b', stage: 'ResponseComplete', verb: 'patch', at: t(3), resource: 'services', subresource: 'status' }) +
        line({ id: 'c', stage: 'ResponseComplete', verb: 'create', at: t(4), resource: 'events' }) +
        line({ id: 'd', stage: 'ResponseComplete', verb: 'patch', at: t(4), resource: 'services', agent: 'portico-bench-floor' }) +
        line({ id: 'e', stage: 'ResponseComplete', verb: 'create', at: t(4), resource: 'events', agent: 'portico-controller/0.1.0 (host-7)' }),
    );
    await log.poll();
    const records = log.records(controller, 0);
    expect(records.filter(isLease).map((r) => r.verb)).toEqual(['update']);
    expect(countByKind(records.filter((r) => !isLease(r)))).toEqual({ 'patch services/status': 1, 'create events': 1 });
    // A window is [from, to).
    expect(log.records(controller, ms(3), ms(4)).map((r) => r.resource)).toEqual(['services/status']);
  });

  it('reads a line written in two parts once it is whole', async () => {
    log = await createAuditLog('blocking', () => true);
    const whole = line({ id: 'a', stage: 'ResponseComplete', verb: 'get', at: t(1), resource: 'services' });
    await appendFile(log.path, whole.slice(0, 40));
    await log.poll();
    expect(log.records(() => true, 0)).toEqual([]);
    await appendFile(log.path, whole.slice(40));
    await log.poll();
    expect(log.records(() => true, 0)).toHaveLength(1);
  });
});
