/**
 * IPv4/IPv6 addresses as bigints, with strict parsing: one spelling in, one canonical spelling out.
 * Anything ambiguous (leading-zero octets, zone ids, IPv4-mapped IPv6) is refused rather than
 * guessed at, because these strings decide who owns which address.
 */

export const IP_FAMILIES = ['IPv4', 'IPv6'] as const;
export type IPFamily = (typeof IP_FAMILIES)[number];

export interface IPAddress {
  readonly family: IPFamily;
  readonly value: bigint;
}

/** An inclusive range of addresses of one family. */
export interface IPRange {
  readonly family: IPFamily;
  readonly start: bigint;
  readonly end: bigint;
}

export interface CIDR extends IPRange {
  readonly prefixLength: number;
}

/** Thrown for any text that is not exactly a valid address, CIDR or range. */
export class AddressParseError extends Error {
  /** The offending text, possibly truncated. */
  readonly input: string;

  constructor(input: string, message: string) {
    super(message);
    this.name = 'AddressParseError';
    this.input = input;
  }
}

/** Longest accepted input: two full IPv6 addresses and a '-' fit with room to spare. */
export const MAX_ADDRESS_TEXT_LENGTH = 100;

const IPV4_MAPPED_PREFIX = 0xffffn;

export function isIPFamily(value: unknown): value is IPFamily {
  return value === 'IPv4' || value === 'IPv6';
}

export function familyBits(family: IPFamily): 32 | 128 {
  return family === 'IPv4' ? 32 : 128;
}

export function otherFamily(family: IPFamily): IPFamily {
  return family === 'IPv4' ? 'IPv6' : 'IPv4';
}

/** Parses one address. Throws AddressParseError. */
export function parseIP(text: string): IPAddress {
  return withContext(text, 'IP address', () => parseAddressText(text));
}

/** Parses one address, or returns undefined when it is not one. */
export function tryParseIP(text: string): IPAddress | undefined {
  try {
    return parseIP(text);
  } catch (error) {
    if (error instanceof AddressParseError) return undefined;
    throw error;
  }
}

/** The canonical spelling of an address. Throws AddressParseError. */
export function canonicalIP(text: string): string {
  return formatIP(parseIP(text));
}

/** IPv4 dotted decimal without leading zeros; IPv6 per RFC 5952 (lowercase, longest zero run as '::'). */
export function formatIP(address: IPAddress): string {
  const { family, value } = address;
  const max = (1n << BigInt(familyBits(family))) - 1n;
  if (value < 0n || value > max) throw new RangeError(`${value.toString()} is outside the ${family} address space`);
  if (family === 'IPv4') {
    const n = Number(value);
    return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
  }
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  // RFC 5952 4.2: compress the longest run of two or more zero groups; the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (part: number[]): string => part.map((g) => g.toString(16)).join(':');
  if (bestStart === -1) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** `192.0.2.0/24` or `2001:db8::/64`. Host bits must be zero. Throws AddressParseError. */
export function parseCIDR(text: string): CIDR {
  return withContext(text, 'CIDR', () => parseCIDRText(text));
}

/** `192.0.2.10-192.0.2.20`: inclusive, same family, start <= end. Throws AddressParseError. */
export function parseRange(text: string): IPRange {
  return withContext(text, 'address range', () => parseRangeText(text));
}

/**
 * A pool entry: a CIDR or an `a-b` range. A bare address is refused with a hint, because the
 * pool spec documents only those two forms. Throws AddressParseError.
 */
export function parseAddressRange(text: string): IPRange {
  return withContext(text, 'address range', () => {
    checkText(text);
    if (text.includes('/')) return parseCIDRText(text);
    if (text.includes('-')) return parseRangeText(text);
    const single = parseAddressText(text);
    throw new Invalid(`a single address is not a range; did you mean ${formatIP(single)}/${familyBits(single.family)}?`);
  });
}

export function rangeSize(range: IPRange): bigint {
  return range.end - range.start + 1n;
}

export function rangeContains(range: IPRange, address: IPAddress): boolean {
  return range.family === address.family && range.start <= address.value && address.value <= range.end;
}

export function rangesOverlap(a: IPRange, b: IPRange): boolean {
  return a.family === b.family && a.start <= b.end && b.start <= a.end;
}

/** `a-b`, or `a` for a one-address range. */
export function formatRange(range: IPRange): string {
  const start = formatIP({ family: range.family, value: range.start });
  if (range.start === range.end) return start;
  return `${start}-${formatIP({ family: range.family, value: range.end })}`;
}

/** IPv4 before IPv6, then numerically. */
export function compareIP(a: IPAddress, b: IPAddress): number {
  if (a.family !== b.family) return a.family === 'IPv4' ? -1 : 1;
  if (a.value === b.value) return 0;
  return a.value < b.value ? -1 : 1;
}

/** A reason without the input, raised by the helpers below and given context by withContext. */
class Invalid extends Error {}

function withContext<T>(text: string, what: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof Invalid)) throw error;
    const shown = shorten(text);
    throw new AddressParseError(shown, `${JSON.stringify(shown)} is not a valid ${what}: ${error.message}`);
  }
}

function shorten(text: unknown): string {
  if (typeof text !== 'string') return typeof text;
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}

function checkText(text: unknown): asserts text is string {
  if (typeof text !== 'string') throw new Invalid(`expected a string, got ${typeof text}`);
  if (text.length === 0) throw new Invalid('it is empty');
  if (text.length > MAX_ADDRESS_TEXT_LENGTH) throw new Invalid(`it is too long (${text.length} characters)`);
  if (/\s/.test(text)) throw new Invalid('it contains whitespace');
  // Only printable ASCII: rejects fullwidth and other non-ASCII digits that some parsers accept.
  if (/[^\x21-\x7e]/.test(text)) throw new Invalid('it contains non-ASCII or control characters');
}

function parseAddressText(text: string): IPAddress {
  checkText(text);
  if (text.includes('%')) throw new Invalid('zone identifiers (%...) are not allowed');
  if (text.includes(':')) return { family: 'IPv6', value: parseIPv6(text) };
  return { family: 'IPv4', value: BigInt(parseIPv4(text)) };
}

function parseIPv4(text: string): number {
  const octets = text.split('.');
  if (octets.length !== 4) throw new Invalid('an IPv4 address has four dot-separated octets');
  let value = 0;
  for (const octet of octets) {
    if (octet === '') throw new Invalid('empty octet');
    if (!/^[0-9]+$/.test(octet)) throw new Invalid(`octet ${JSON.stringify(shorten(octet))} is not a decimal number`);
    if (octet.length > 1 && octet.startsWith('0')) {
      throw new Invalid(`octet ${JSON.stringify(octet)} has a leading zero, which some parsers read as octal`);
    }
    const n = octet.length > 3 ? 256 : Number(octet);
    if (n > 255) throw new Invalid(`octet ${JSON.stringify(shorten(octet))} exceeds 255`);
    value = value * 256 + n;
  }
  return value;
}

function parseIPv6(text: string): bigint {
  const gap = text.indexOf('::');
  if (gap !== -1 && text.indexOf('::', gap + 1) !== -1) throw new Invalid("'::' may appear only once");
  const headText = gap === -1 ? text : text.slice(0, gap);
  const tailText = gap === -1 ? '' : text.slice(gap + 2);
  const head = headText === '' ? [] : headText.split(':');
  const tail = tailText === '' ? [] : tailText.split(':');
  // Only the very last piece of the address may be an embedded dotted IPv4 address (RFC 4291 2.2).
  const toGroups = (pieces: string[], mayEndInIPv4: boolean): number[] =>
    pieces.flatMap((piece, i) => {
      if (mayEndInIPv4 && i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4(piece);
        return [v4 >>> 16, v4 & 0xffff];
      }
      if (piece === '') throw new Invalid("empty group (a single ':' at the start or end?)");
      if (!/^[0-9A-Fa-f]{1,4}$/.test(piece)) {
        throw new Invalid(`group ${JSON.stringify(shorten(piece))} is not 1 to 4 hexadecimal digits`);
      }
      return [parseInt(piece, 16)];
    });
  const headGroups = toGroups(head, gap === -1);
  const tailGroups = toGroups(tail, gap !== -1);
  const count = headGroups.length + tailGroups.length;
  if (gap === -1 && count !== 8) throw new Invalid(`an IPv6 address has eight groups, found ${count}`);
  if (gap !== -1 && count > 7) throw new Invalid("too many groups for an address with '::'");
  const groups = [...headGroups, ...new Array<number>(8 - count).fill(0), ...tailGroups];
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(group);
  if (value >> 32n === IPV4_MAPPED_PREFIX) {
    throw new Invalid(
      `IPv4-mapped IPv6 addresses are not accepted; write the IPv4 address ${formatIP({ family: 'IPv4', value: value & 0xffffffffn })}`,
    );
  }
  return value;
}

function parseCIDRText(text: string): CIDR {
  checkText(text);
  const parts = text.split('/');
  if (parts.length !== 2) throw new Invalid("expected one '/' between address and prefix length");
  const [addressText = '', prefixText = ''] = parts;
  if (addressText === '') throw new Invalid("missing the address before '/'");
  if (prefixText === '') throw new Invalid("missing the prefix length after '/'");
  const address = parseAddressText(addressText);
  const bits = familyBits(address.family);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) {
    throw new Invalid(`prefix length ${JSON.stringify(shorten(prefixText))} is not a decimal number without leading zeros`);
  }
  const prefixLength = Number(prefixText);
  if (prefixLength > bits) throw new Invalid(`prefix length ${prefixLength} exceeds ${bits} for ${address.family}`);
  const hostMask = (1n << BigInt(bits - prefixLength)) - 1n;
  if ((address.value & hostMask) !== 0n) {
    const network = formatIP({ family: address.family, value: address.value & ~hostMask });
    throw new Invalid(`host bits set, did you mean ${network}/${prefixLength}?`);
  }
  return { family: address.family, start: address.value, end: address.value | hostMask, prefixLength };
}

function parseRangeText(text: string): IPRange {
  checkText(text);
  const parts = text.split('-');
  if (parts.length !== 2) throw new Invalid("expected one '-' between the first and last address");
  const [startText = '', endText = ''] = parts;
  if (startText === '') throw new Invalid("missing the first address before '-'");
  if (endText === '') throw new Invalid("missing the last address after '-'");
  const start = parseAddressText(startText);
  const end = parseAddressText(endText);
  if (start.family !== end.family) throw new Invalid('it mixes IPv4 and IPv6');
  if (start.value > end.value) throw new Invalid(`${formatIP(start)} comes after ${formatIP(end)}`);
  return { family: start.family, start: start.value, end: end.value };
}
