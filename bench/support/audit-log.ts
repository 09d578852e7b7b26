/**
 * The API server's audit log as a request counter by user agent, with timestamps.
 * `apiserver_request_total` has no user-agent label; the audit log does, and it records when
 * each request arrived (`requestReceivedTimestamp`), so requests can be attributed to one
 * process (its user agent carries its identity) and placed in time.
 *
 * The policy logs every request at level Metadata (no bodies), stage RequestReceived omitted. A
 * non-watch request is counted once, at ResponseComplete. A watch is counted once, at its start
 * (ResponseStarted): its ResponseComplete, when it ends minutes later, is not activity. A watch
 * refused before it started (no ResponseStarted) is counted at its ResponseComplete.
 */
import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';

export const AUDIT_MODES = ['blocking', 'batch', 'off'] as const;
export type AuditMode = (typeof AUDIT_MODES)[number];

/** In batch mode the log lags by up to this much; polls allow for it. */
const BATCH_MAX_WAIT_S = 1;

const POLICY = 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n';

export interface AuditRecord {
  /** requestReceivedTimestamp, ms since the epoch. */
  at: number;
  verb: string;
  /** `leases`, `services/status`, `events`, ... */
  resource: string;
  code: number | undefined;
}

interface AuditEvent {
  auditID?: string;
  stage?: string;
  verb?: string;
  userAgent?: string;
  requestReceivedTimestamp?: string;
  objectRef?: { resource?: string; subresource?: string };
  responseStatus?: { code?: number };
}

export interface AuditLog {
  mode: AuditMode;
  /** Where kube-apiserver writes the log. */
  path: string;
  /** kube-apiserver flags that turn the log on (none when mode is off). */
  apiserverArgs: string[];
  /** How long after a request arrived it is certainly in the log (batching lag plus a margin), ms. */
  lagMs: number;
  /** Reads what was appended since the last poll. */
  poll(): Promise<void>;
  /** Records of the user agents `agent` accepts whose arrival is in [fromMs, toMs), oldest first. */
  records(agent: (userAgent: string) => boolean, fromMs: number, toMs?: number): AuditRecord[];
  close(): Promise<void>;
}

/** `keep` picks the user agents whose records are kept in memory (the others are only skipped). */
export async function createAuditLog(mode: AuditMode, keep: (userAgent: string) => boolean): Promise<AuditLog> {
  const dir = await mkdtemp(join(tmpdir(), 'portico-bench-audit-'));
  const policyPath = join(dir, 'policy.yaml');
  const logPath = join(dir, 'audit.log');
  await writeFile(policyPath, POLICY);
  const modeArgs =
    mode === 'batch'
      ? ['--audit-log-mode=batch', `--audit-log-batch-max-wait=${String(BATCH_MAX_WAIT_S)}s`, '--audit-log-batch-throttle-enable=false']
      : ['--audit-log-mode=blocking'];
  // A large maxsize: the log must not rotate under the reader during a run.
  const apiserverArgs = mode === 'off' ? [] : [`--audit-policy-file=${policyPath}`, `--audit-log-path=${logPath}`, '--audit-log-maxsize=100000', ...modeArgs];
  const byAgent = new Map<string, AuditRecord[]>();
  const startedWatches = new Set<string>();
  let handle: FileHandle | undefined;
  let offset = 0;
  let partial = '';
  const decoder = new StringDecoder('utf8');

  const take = (line: string): void => {
    if (!line) return;
    const event = JSON.parse(line) as AuditEvent;
    const agent = event.userAgent ?? '';
    if (!keep(agent)) return;
    const id = event.auditID ?? '';
    if (event.verb === 'watch') {
      if (event.stage === 'ResponseStarted') startedWatches.add(id);
      else if (startedWatches.delete(id)) return;
    } else if (event.stage !== 'ResponseComplete' && event.stage !== 'Panic') {
      return;
    }
    const ref = event.objectRef ?? {};
    const record: AuditRecord = {
      at: Date.parse(event.requestReceivedTimestamp ?? ''),
      verb: event.verb ?? '?',
      resource: `${ref.resource ?? '?'}${ref.subresource ? `/${ref.subresource}` : ''}`,
      code: event.responseStatus?.code,
    };
    let list = byAgent.get(agent);
    if (!list) byAgent.set(agent, (list = []));
    list.push(record);
  };

  return {
    mode,
    path: logPath,
    apiserverArgs,
    lagMs: mode === 'batch' ? BATCH_MAX_WAIT_S * 1000 + 1000 : 1000,
    poll: async () => {
      if (mode === 'off') return;
      handle ??= await open(logPath, 'r').catch(() => undefined);
      if (!handle) return;
      const buffer = Buffer.alloc(1 << 20);
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        const lines = (partial + decoder.write(buffer.subarray(0, bytesRead))).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) take(line);
      }
    },
    records: (match, fromMs, toMs = Infinity) => {
      const out: AuditRecord[] = [];
      for (const [agent, list] of byAgent) {
        if (!match(agent)) continue;
        for (const r of list) if (r.at >= fromMs && r.at < toMs) out.push(r);
      }
      return out.sort((a, b) => a.at - b.at);
    },
    close: async () => {
      await handle?.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function isLease(record: AuditRecord): boolean {
  return record.resource === 'leases';
}

/** `VERB resource` -> count, most frequent first. */
export function countByKind(records: readonly AuditRecord[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of records) {
    const key = `${r.verb} ${r.resource}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).sort(([, a], [, b]) => b - a));
}
