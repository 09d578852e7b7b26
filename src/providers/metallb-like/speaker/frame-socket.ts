/**
 * AF_PACKET raw sockets through koffi (a prebuilt FFI: no compiler, no install script).
 *
 * Every native call here is non-blocking and synchronous: sockets are opened with
 * SOCK_NONBLOCK and drained with recvfrom(MSG_DONTWAIT) from one short timer. Nothing waits in
 * native code, so no koffi `.async` call, no thread, and no callback from native code exists;
 * earlier probes saw koffi crash around async poll/recvfrom, and this design has no such call
 * to crash. The cost is a wakeup every `pollIntervalMs` (default 5 ms) while a socket is open,
 * and up to that much latency on an ARP/NDP answer, far below any client's retransmit timer.
 */
import { readFile, readdir } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export interface FrameSocket {
  readonly interfaceName: string;
  readonly ifindex: number;
  readonly mac: string;
  /** Sends one Ethernet frame (with header) out of the interface; false when the kernel refused it. */
  send(frame: Buffer): boolean;
  /** Receives Ethernet frames whose destination is this link-layer multicast address too. */
  joinMulticast(mac: string): void;
  leaveMulticast(mac: string): void;
  close(): void;
}

export interface FrameSocketOptions {
  interfaceName: string;
  ethertype: number;
  onFrame: (frame: Buffer) => void;
  /** Only ICMPv6 Neighbor Solicitations reach userspace (a kernel-side BPF filter). */
  onlyNeighborSolicitations?: boolean;
}

/** The narrow interface the announcer uses, so tests can hand in a fake. */
export interface FrameSocketFactory {
  open(options: FrameSocketOptions): FrameSocket;
}

export class FrameSocketError extends Error {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
    this.name = 'FrameSocketError';
  }
}

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const SOL_SOCKET = 1;
const SO_ATTACH_FILTER = 26;
const SOL_PACKET = 263;
const PACKET_ADD_MEMBERSHIP = 1;
const PACKET_DROP_MEMBERSHIP = 2;
const PACKET_MR_MULTICAST = 0;
const PACKET_OUTGOING = 4;
const EAGAIN = 11;
const EINTR = 4;
const SOCKADDR_LL_LENGTH = 20;
const MAX_FRAME = 2048;
/** Frames drained per socket per tick, so a flood cannot starve the event loop. */
const MAX_FRAMES_PER_TICK = 256;

interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, length: number): number;
  recvfrom(fd: number, buf: Buffer, length: number, flags: number, addr: Buffer, addrLength: Buffer): number;
  send(fd: number, buf: Buffer, length: number, flags: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, length: number): number;
  close(fd: number): number;
  errno(): number;
  /** Address of a buffer's memory, for the one struct that holds a pointer (sock_fprog). */
  address(buf: Buffer): bigint;
}

let libc: Libc | undefined;

function loadLibc(): Libc {
  if (libc) return libc;
  // koffi is CommonJS with a native part; required lazily so that importing this module (e.g.
  // for `--help` or unit tests of the announcer) never loads native code.
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  libc = {
    socket: lib.func('int socket(int, int, int)') as Libc['socket'],
    bind: lib.func('int bind(int, void *, uint32_t)') as Libc['bind'],
    recvfrom: lib.func('intptr_t recvfrom(int, void *, size_t, int, void *, void *)') as Libc['recvfrom'],
    send: lib.func('intptr_t send(int, void *, size_t, int)') as Libc['send'],
    setsockopt: lib.func('int setsockopt(int, int, int, void *, uint32_t)') as Libc['setsockopt'],
    close: lib.func('int close(int)') as Libc['close'],
    errno: () => koffi.errno(),
    address: (buf) => koffi.address(buf),
  };
  return libc;
}

function htons(value: number): number {
  return ((value & 0xff) << 8) | ((value >> 8) & 0xff);
}

/**
 * Classic BPF: accept IPv6 frames carrying ICMPv6 type 135 right after the fixed header
 * (how every stack sends Neighbor Solicitations), drop everything else in the kernel.
 */
function neighborSolicitationFilter(): Buffer {
  const program: [number, number, number, number][] = [
    [0x28, 0, 0, 12], // ldh [12]          ethertype
    [0x15, 0, 5, 0x86dd], // jeq IPv6, else drop
    [0x30, 0, 0, 20], // ldb [20]          next header
    [0x15, 0, 3, 58], // jeq ICMPv6, else drop
    [0x30, 0, 0, 54], // ldb [54]          ICMPv6 type
    [0x15, 0, 1, 135], // jeq NS, else drop
    [0x06, 0, 0, 0xffff], // ret accept
    [0x06, 0, 0, 0], // ret drop
  ];
  const buf = Buffer.alloc(program.length * 8);
  program.forEach(([code, jt, jf, k], i) => {
    buf.writeUInt16LE(code, i * 8);
    buf[i * 8 + 2] = jt;
    buf[i * 8 + 3] = jf;
    buf.writeUInt32LE(k, i * 8 + 4);
  });
  return buf;
}

function packetMreq(ifindex: number, mac: string): Buffer {
  const buf = Buffer.alloc(16);
  buf.writeInt32LE(ifindex, 0);
  buf.writeUInt16LE(PACKET_MR_MULTICAST, 4);
  buf.writeUInt16LE(6, 6);
  Buffer.from(mac.split(':').map((p) => parseInt(p, 16))).copy(buf, 8);
  return buf;
}

interface OpenSocket {
  fd: number;
  options: FrameSocketOptions;
}

/** Opens AF_PACKET sockets and drains them all from one timer. */
export class PacketSockets implements FrameSocketFactory {
  private readonly open_ = new Set<OpenSocket>();
  private timer: NodeJS.Timeout | undefined;
  private readonly buffer = Buffer.alloc(MAX_FRAME);
  private readonly address = Buffer.alloc(SOCKADDR_LL_LENGTH);
  private readonly addressLength = Buffer.alloc(4);
  /** Frames received and sent, and receive errors other than "nothing to read". */
  readonly stats = { received: 0, sent: 0, sendErrors: 0, receiveErrors: 0 };

  constructor(
    private readonly options: { pollIntervalMs?: number; onError?: (error: Error) => void } = {},
    private readonly sysfs = '/sys/class/net',
  ) {}

  open(options: FrameSocketOptions): FrameSocket {
    const c = loadLibc();
    const ifindex = Number(readSysfsSync(this.sysfs, options.interfaceName, 'ifindex'));
    const mac = readSysfsSync(this.sysfs, options.interfaceName, 'address');
    const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(options.ethertype));
    if (fd < 0) {
      const errno = c.errno();
      throw new FrameSocketError(`socket(AF_PACKET) for ${options.interfaceName}: errno ${errno}${errno === 1 ? ' (EPERM: CAP_NET_RAW is needed)' : ''}`, errno);
    }
    const fail = (what: string): never => {
      const errno = c.errno();
      c.close(fd);
      throw new FrameSocketError(`${what} on ${options.interfaceName}: errno ${errno}`, errno);
    };
    if (options.onlyNeighborSolicitations) {
      const program = neighborSolicitationFilter();
      const fprog = Buffer.alloc(16);
      fprog.writeUInt16LE(program.length / 8, 0);
      fprog.writeBigUInt64LE(c.address(program), 8);
      if (c.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog, fprog.length) !== 0) fail('SO_ATTACH_FILTER');
    }
    const sll = Buffer.alloc(SOCKADDR_LL_LENGTH);
    sll.writeUInt16LE(AF_PACKET, 0);
    sll.writeUInt16BE(options.ethertype, 2);
    sll.writeInt32LE(ifindex, 4);
    if (c.bind(fd, sll, sll.length) !== 0) fail('bind');
    // Frames that arrived before bind may belong to any interface: drop them.
    this.drain({ fd, options: { ...options, onFrame: () => undefined } });
    const entry: OpenSocket = { fd, options };
    this.open_.add(entry);
    this.timer ??= setInterval(() => this.tick(), this.options.pollIntervalMs ?? 5).unref();
    let closed = false;
    return {
      interfaceName: options.interfaceName,
      ifindex,
      mac,
      send: (frame) => {
        if (closed) return false;
        const sent = c.send(fd, frame, frame.length, MSG_DONTWAIT);
        if (sent === frame.length) {
          this.stats.sent++;
          return true;
        }
        this.stats.sendErrors++;
        return false;
      },
      joinMulticast: (group) => {
        if (closed) return;
        const mreq = packetMreq(ifindex, group);
        if (c.setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq, mreq.length) !== 0) {
          this.options.onError?.(new FrameSocketError(`PACKET_ADD_MEMBERSHIP ${group} on ${options.interfaceName}: errno ${c.errno()}`, c.errno()));
        }
      },
      leaveMulticast: (group) => {
        if (closed) return;
        const mreq = packetMreq(ifindex, group);
        c.setsockopt(fd, SOL_PACKET, PACKET_DROP_MEMBERSHIP, mreq, mreq.length);
      },
      close: () => {
        if (closed) return;
        closed = true;
        this.open_.delete(entry);
        c.close(fd);
        if (this.open_.size === 0 && this.timer) {
          clearInterval(this.timer);
          this.timer = undefined;
        }
      },
    };
  }

  /** How many sockets are open (for tests and the soak benchmark). */
  get openCount(): number {
    return this.open_.size;
  }

  private tick(): void {
    for (const entry of [...this.open_]) {
      if (this.open_.has(entry)) this.drain(entry);
    }
  }

  private drain(entry: OpenSocket): void {
    const c = loadLibc();
    for (let i = 0; i < MAX_FRAMES_PER_TICK; i++) {
      this.addressLength.writeUInt32LE(SOCKADDR_LL_LENGTH, 0);
      const n = c.recvfrom(entry.fd, this.buffer, this.buffer.length, MSG_DONTWAIT, this.address, this.addressLength);
      if (n < 0) {
        const errno = c.errno();
        if (errno === EAGAIN || errno === EINTR) return;
        this.stats.receiveErrors++;
        this.options.onError?.(new FrameSocketError(`recvfrom on ${entry.options.interfaceName}: errno ${errno}`, errno));
        return;
      }
      // Our own transmissions are looped back to packet sockets: skip them.
      if (this.address[10] === PACKET_OUTGOING) continue;
      this.stats.received++;
      const frame = Buffer.from(this.buffer.subarray(0, n));
      try {
        entry.options.onFrame(frame);
      } catch (error) {
        this.options.onError?.(error as Error);
      }
    }
  }
}

function readSysfsSync(sysfs: string, name: string, file: string): string {
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(name)) throw new FrameSocketError(`not an interface name: ${JSON.stringify(name).slice(0, 40)}`, 0);
  const path = `${sysfs}/${name}/${file}`;
  if (!existsSync(path)) throw new FrameSocketError(`interface ${name} not found`, 19);
  // Synchronous on purpose: sysfs reads do not block, and open() stays synchronous.
  return readFileSync(path, 'utf8').trim();
}

// ---------------------------------------------------------------- interface discovery

export interface NetworkInterface {
  name: string;
  ifindex: number;
  mac: string;
}

const IFF_UP = 0x1;
const IFF_BROADCAST = 0x2;
const IFF_LOOPBACK = 0x8;
const IFF_NOARP = 0x80;
const ARPHRD_ETHER = 1;

/**
 * Interfaces that can carry an announcement: up, Ethernet, broadcast-capable, ARP enabled,
 * not loopback and not enslaved to a bond or bridge (the master answers for them). With
 * `only`, just those names (the pool's `l2.interfaces`), when they qualify.
 */
export async function discoverInterfaces(only?: readonly string[], sysfs = '/sys/class/net'): Promise<NetworkInterface[]> {
  let names: string[];
  try {
    names = await readdir(sysfs);
  } catch {
    return [];
  }
  const found: NetworkInterface[] = [];
  for (const name of names.sort()) {
    if (only && only.length > 0 && !only.includes(name)) continue;
    try {
      const read = (file: string): Promise<string> => readFile(`${sysfs}/${name}/${file}`, 'utf8').then((s) => s.trim());
      const flags = Number(await read('flags'));
      const type = Number(await read('type'));
      if (type !== ARPHRD_ETHER || (flags & IFF_UP) === 0 || (flags & IFF_BROADCAST) === 0) continue;
      if ((flags & (IFF_LOOPBACK | IFF_NOARP)) !== 0) continue;
      // A bond slave or bridge port has a `master` link; the master is the interface to use.
      if (existsSync(`${sysfs}/${name}/master`)) continue;
      const operstate = await read('operstate').catch(() => 'unknown');
      if (operstate === 'down' || operstate === 'lowerlayerdown') continue;
      found.push({ name, ifindex: Number(await read('ifindex')), mac: await read('address') });
    } catch {
      // vanished while we looked: skip it
    }
  }
  return found;
}
