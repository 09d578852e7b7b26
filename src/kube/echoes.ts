/**
 * A controller's own writes come back on its watches: the same object, at the same
 * resourceVersion, as the write's answer. Parsing both costs twice (about 50 µs and 10 KB of
 * garbage for a Service), and the informer would cache a second copy of what the controller
 * keeps. For writes that opt in, whichever of the two arrives second is not parsed: it is the
 * object the first one gave.
 *
 * - The answer first (the usual order): it is kept until its event arrives; the event then
 *   carries that very object, recognised from the raw line.
 * - The event first: parsed ADDED and MODIFIED events of an object with such a write in
 *   flight are kept; an answer of the same version is then that event's object (as the
 *   informer cached it: without managedFields or kubectl's last-applied copy).
 *
 * Safe by construction: a raw line or answer is matched only when its own `metadata.uid` and
 * `metadata.resourceVersion` both equal those of a kept object (one object at one version),
 * and only in the API server's field order; anything else is parsed as before. A kept answer
 * whose event never comes (a relist in between, a selector that excludes it) is dropped after
 * `MAX_AGE_MS` or once `MAX_KEPT` newer ones are kept; kept events go once no such write is in
 * flight. Callers must treat the answer of a write they opted in as read-only: the informer
 * caches that very object.
 */

export const MAX_KEPT = 2048;
export const MAX_AGE_MS = 30_000;

interface Kept {
  uid: string;
  object: unknown;
  at: number;
}

interface Meta {
  metadata?: { uid?: string; resourceVersion?: string };
}

const TYPE_PREFIX = '{"type":"';
const METADATA = '"metadata":{';
const UID = '"uid":"';
const RESOURCE_VERSION = '"resourceVersion":"';

/** Metadata fields that may hold a `uid` or `resourceVersion` of something else. */
const NESTED = ['"labels":', '"annotations":', '"ownerReferences":', '"managedFields":'];

/** The string value starting at `start`, up to the next quote; undefined if unterminated. */
function stringAt(raw: string, start: number): string | undefined {
  const end = raw.indexOf('"', start);
  return end < 0 ? undefined : raw.slice(start, end);
}

/**
 * The object's own uid and resourceVersion in its raw JSON (an answer, or a watch line), or
 * undefined. Its metadata is the first in the text, and the API server writes uid and
 * resourceVersion before labels, annotations, owner references and managed fields; text laid
 * out otherwise (keys re-sorted on the way) is not matched, only parsed.
 */
function versionOf(raw: string): { uid: string; resourceVersion: string } | undefined {
  const metadata = raw.indexOf(METADATA);
  if (metadata < 0) return undefined;
  const uidAt = raw.indexOf(UID, metadata);
  const resourceVersionAt = raw.indexOf(RESOURCE_VERSION, metadata);
  if (uidAt < 0 || resourceVersionAt < 0) return undefined;
  const last = Math.max(uidAt, resourceVersionAt);
  for (const nested of NESTED) {
    const at = raw.indexOf(nested, metadata);
    if (at >= 0 && at < last) return undefined;
  }
  const uid = stringAt(raw, uidAt + UID.length);
  const resourceVersion = stringAt(raw, resourceVersionAt + RESOURCE_VERSION.length);
  return uid === undefined || resourceVersion === undefined ? undefined : { uid, resourceVersion };
}

/** A parsed object's uid and resourceVersion, or undefined when it lacks either. */
function objectVersion(object: unknown): { uid: string; resourceVersion: string } | undefined {
  const metadata = (object as Meta | undefined)?.metadata;
  return metadata?.uid && metadata.resourceVersion ? { uid: metadata.uid, resourceVersion: metadata.resourceVersion } : undefined;
}

/** Adds `entry` as the newest, dropping the oldest beyond MAX_KEPT. */
function keep(map: Map<string, Kept>, resourceVersion: string, entry: Kept): void {
  map.delete(resourceVersion);
  map.set(resourceVersion, entry);
  if (map.size > MAX_KEPT) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
}

export class WriteEchoes {
  /** Answers waiting for their event, by resourceVersion, oldest first (a Map keeps insertion order). */
  private readonly kept = new Map<string, Kept>();
  /** Events of objects with a write in flight, which may come before that write's answer. */
  private readonly delivered = new Map<string, Kept>();
  /** Writes in flight that opted in, by the uid of the object they change. */
  private readonly inFlight = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Answers kept and events kept, for tests. */
  get size(): number {
    return this.kept.size + this.delivered.size;
  }

  /** A write of the object `uid` that opted in was sent; `writeEnded` must follow once, whatever its outcome. */
  writeStarted(uid: string): void {
    this.inFlight.set(uid, (this.inFlight.get(uid) ?? 0) + 1);
  }

  writeEnded(uid: string): void {
    const left = (this.inFlight.get(uid) ?? 1) - 1;
    if (left > 0) this.inFlight.set(uid, left);
    else this.inFlight.delete(uid);
    if (this.inFlight.size === 0) this.delivered.clear();
    this.expire(this.now());
  }

  /** The answer `raw` of a write that opted in, if its event came first: that event's object. */
  answered(raw: string): unknown {
    if (this.delivered.size === 0) return undefined;
    const version = versionOf(raw);
    if (version === undefined) return undefined;
    const event = this.delivered.get(version.resourceVersion);
    if (event === undefined || event.uid !== version.uid) return undefined;
    this.delivered.delete(version.resourceVersion);
    return event.object;
  }

  /** A watch event that was parsed: kept while a write of its object may still be answered with it. */
  parsed(event: { type: string; object: unknown }): void {
    if (this.inFlight.size === 0 || (event.type !== 'ADDED' && event.type !== 'MODIFIED')) return;
    const version = objectVersion(event.object);
    if (version === undefined || !this.inFlight.has(version.uid)) return;
    // Not aged: all go when no write that opted in is in flight.
    keep(this.delivered, version.resourceVersion, { uid: version.uid, object: event.object, at: 0 });
  }

  /** Keeps a write's parsed answer for the watch event of the same version. */
  remember(object: unknown): void {
    const version = objectVersion(object);
    if (version === undefined) return;
    const now = this.now();
    this.expire(now);
    keep(this.kept, version.resourceVersion, { uid: version.uid, object, at: now });
  }

  /** The event `line` carries, if it is the echo of a kept answer: that answer, unparsed. */
  take(line: string): { type: 'ADDED' | 'MODIFIED'; object: unknown } | undefined {
    if (this.kept.size === 0) return undefined;
    this.expire(this.now());
    if (!line.startsWith(TYPE_PREFIX)) return undefined;
    const type = line.slice(TYPE_PREFIX.length, line.indexOf('"', TYPE_PREFIX.length));
    if (type !== 'ADDED' && type !== 'MODIFIED') return undefined;
    const version = versionOf(line);
    if (version === undefined) return undefined;
    const kept = this.kept.get(version.resourceVersion);
    if (kept === undefined || kept.uid !== version.uid) return undefined;
    this.kept.delete(version.resourceVersion);
    return { type, object: kept.object };
  }

  private expire(now: number): void {
    for (const [resourceVersion, kept] of this.kept) {
      if (now - kept.at < MAX_AGE_MS) return;
      this.kept.delete(resourceVersion);
    }
  }
}
