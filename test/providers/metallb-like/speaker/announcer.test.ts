import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../fakes/clock.js';
import { FakeFrameSockets, type FakeSocket } from '../../../fakes/frame-sockets.js';
import { parseIP } from '../../../../src/ipam/ip.js';
import { Announcer, type OwnedIP } from '../../../../src/providers/metallb-like/speaker/announcer.js';
import {
  decodeArp,
  decodeNeighborAdvertisement,
  encodeArpRequest,
  encodeNeighborSolicitation,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV6,
} from '../../../../src/providers/metallb-like/speaker/frames.js';

const CLIENT = '02:00:00:00:00:0a';
const ETH0 = { name: 'eth0', ifindex: 2, mac: '02:00:00:00:01:00' };
const ETH1 = { name: 'eth1', ifindex: 3, mac: '02:00:00:00:01:01' };

function setup(allowed = (): boolean => true): { clock: FakeClock; sockets: FakeFrameSockets; announcer: Announcer; counts: Record<string, number> } {
  const clock = new FakeClock();
  const sockets = new FakeFrameSockets([ETH0, ETH1]);
  const counts: Record<string, number> = {};
  const bump = (key: string): void => {
    counts[key] = (counts[key] ?? 0) + 1;
  };
  const announcer = new Announcer({
    sockets,
    discover: sockets.discover,
    clock,
    logger: pino({ level: 'silent' }),
    gratuitousRepeats: 3,
    gratuitousIntervalMs: 1_200,
    allowed,
    counters: { reply: (p) => bump(`reply-${p}`), gratuitous: (p) => bump(`garp-${p}`) },
  });
  return { clock, sockets, announcer, counts };
}

const own = (entries: [string, string[]?][]): Map<string, OwnedIP> => new Map(entries.map(([ip, interfaces]) => [ip, { address: parseIP(ip), interfaces: interfaces ?? [] }]));
/** The one open socket of that kind on the interface. */
function socketOf(sockets: FakeFrameSockets, name: string, ethertype: number): FakeSocket {
  const [socket, ...more] = sockets.open_(name, ethertype);
  if (!socket || more.length > 0) throw new Error(`expected one open socket on ${name}`);
  return socket;
}

const who = (ip: string): Buffer => encodeArpRequest(CLIENT, parseIP('192.0.2.100'), parseIP(ip));

describe('Announcer', () => {
  it('answers who-has for an owned IP with the receiving interface MAC, on every interface', async () => {
    const { sockets, announcer, counts } = setup();
    await announcer.reconcile(own([['192.0.2.200']]));
    for (const iface of [ETH0, ETH1]) {
      const socket = socketOf(sockets, iface.name, ETHERTYPE_ARP);
      socket.sent.length = 0;
      socket.receive(who('192.0.2.200'));
      expect(socket.sent.map((f) => decodeArp(f))).toEqual([
        expect.objectContaining({ operation: 'reply', senderMac: iface.mac, senderIP: parseIP('192.0.2.200'), targetMac: CLIENT, ethDestination: CLIENT }),
      ]);
    }
    expect(counts['reply-arp']).toBe(2);
    expect(announcer.announced()).toEqual(new Map([['192.0.2.200', ['eth0', 'eth1']]]));
  });

  it('stays silent for addresses it does not own', async () => {
    const { sockets, announcer } = setup();
    await announcer.reconcile(own([['192.0.2.200']]));
    const socket = socketOf(sockets, 'eth0', ETHERTYPE_ARP);
    socket.sent.length = 0;
    socket.receive(who('192.0.2.201'));
    expect(socket.sent).toEqual([]);
  });

  it('uses only the pool interfaces when they are given', async () => {
    const { sockets, announcer } = setup();
    await announcer.reconcile(own([['192.0.2.200', ['eth1']]]));
    expect(sockets.open_('eth0', ETHERTYPE_ARP)).toEqual([]);
    expect(sockets.open_('eth1', ETHERTYPE_ARP)).toHaveLength(1);
  });

  it('sends gratuitous ARP at once and repeats it 3 times 1.2 s apart, then stops', async () => {
    const { clock, sockets, announcer } = setup();
    await announcer.reconcile(own([['192.0.2.200', ['eth0']]]));
    const socket = socketOf(sockets, 'eth0', ETHERTYPE_ARP);
    const garps = (): number => socket.sent.filter((f) => decodeArp(f)?.senderIP.value === decodeArp(f)?.targetIP.value).length;
    expect(garps()).toBe(1);
    await clock.advance(1_199);
    expect(garps()).toBe(1);
    await clock.advance(1);
    expect(garps()).toBe(2);
    await clock.advance(10_000);
    expect(garps()).toBe(4);
  });

  it('goes silent at once when an address is released: no reply, no further gratuitous ARP, socket closed', async () => {
    const { clock, sockets, announcer } = setup();
    await announcer.reconcile(own([['192.0.2.200', ['eth0']]]));
    const socket = socketOf(sockets, 'eth0', ETHERTYPE_ARP);
    announcer.releaseAll();
    expect(socket.closed).toBe(true);
    const before = socket.sent.length;
    socket.receive(who('192.0.2.200'));
    await clock.advance(10_000);
    expect(socket.sent.length).toBe(before);
    expect(announcer.announced().size).toBe(0);
  });

  it('announces nothing when it is no longer allowed to by the time the interfaces are known', async () => {
    let allowed = true;
    const { sockets, announcer } = setup(() => allowed);
    await announcer.reconcile(own([['192.0.2.200', ['eth0']]]));
    allowed = false;
    await announcer.reconcile(own([['192.0.2.200', ['eth0']], ['192.0.2.201', ['eth0']]]));
    expect(announcer.announced().size).toBe(0);
    expect(sockets.open_('eth0', ETHERTYPE_ARP)).toEqual([]);
  });

  it('IPv6: joins the solicited-node group, answers NS with NA, sends unsolicited NA, leaves on release', async () => {
    const { sockets, announcer, counts } = setup();
    await announcer.reconcile(own([['2001:db8::200', ['eth0']]]));
    const socket = socketOf(sockets, 'eth0', ETHERTYPE_IPV6);
    expect(socket.options.onlyNeighborSolicitations).toBe(true);
    expect([...socket.groups]).toEqual(['33:33:ff:00:02:00']);
    expect(decodeNeighborAdvertisement(socket.sent[0] ?? Buffer.alloc(0))).toMatchObject({ target: parseIP('2001:db8::200'), solicited: false, override: true, targetLinkLayer: ETH0.mac });
    socket.receive(encodeNeighborSolicitation(CLIENT, parseIP('2001:db8::100'), parseIP('2001:db8::200')));
    expect(decodeNeighborAdvertisement(socket.sent.at(-1) ?? Buffer.alloc(0))).toMatchObject({ destination: parseIP('2001:db8::100'), solicited: true, override: true, targetLinkLayer: ETH0.mac });
    expect(counts['reply-ndp']).toBe(1);
    await announcer.reconcile(own([]));
    expect(socket.closed).toBe(true);
  });

  it('keeps announcing an address across reconciles without repeating the gratuitous burst', async () => {
    const { sockets, announcer } = setup();
    await announcer.reconcile(own([['192.0.2.200', ['eth0']]]));
    await announcer.reconcile(own([['192.0.2.200', ['eth0']]]));
    const socket = socketOf(sockets, 'eth0', ETHERTYPE_ARP);
    expect(socket.sent).toHaveLength(1);
  });
});
