/**
 * Soak of the AF_PACKET frame sockets, run inside a network namespace by frame-socket.net.test.ts
 * (and usable by hand): a veth pair `a`/`b` in one namespace, frames sent on one end and counted on
 * the other, over repeated open/close cycles. Prints one JSON line with the counts.
 */
import { parseIP } from '../../../../../src/ipam/ip.js';
import { PacketSockets } from '../../../../../src/providers/metallb-like/speaker/frame-socket.js';
import { decodeArp, encodeArpRequest, ETHERTYPE_ARP, ETHERTYPE_IPV6, encodeNeighborSolicitation, decodeNeighborSolicitation } from '../../../../../src/providers/metallb-like/speaker/frames.js';

const [sendIf = 'a', recvIf = 'b', cyclesText = '20', framesText = '500'] = process.argv.slice(2);
const cycles = Number(cyclesText);
const perCycle = Number(framesText);
const sockets = new PacketSockets({ pollIntervalMs: 2, onError: (e) => process.stderr.write(`${e.message}\n`) });

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return check();
}

let sent = 0;
let arpReceived = 0;
let nsReceived = 0;
let otherReceived = 0;
for (let cycle = 0; cycle < cycles; cycle++) {
  const target = parseIP(`192.0.2.${(cycle % 200) + 10}`);
  const target6 = parseIP(`2001:db8::${(cycle % 200) + 10}`);
  let cycleArp = 0;
  let cycleNs = 0;
  const rx = sockets.open({
    interfaceName: recvIf,
    ethertype: ETHERTYPE_ARP,
    onFrame: (frame) => {
      const arp = decodeArp(frame);
      if (arp && arp.targetIP.value === target.value) cycleArp++;
      else otherReceived++;
    },
  });
  const rx6 = sockets.open({
    interfaceName: recvIf,
    ethertype: ETHERTYPE_IPV6,
    onlyNeighborSolicitations: true,
    onFrame: (frame) => {
      const ns = decodeNeighborSolicitation(frame);
      if (ns && ns.target.value === target6.value) cycleNs++;
      else otherReceived++;
    },
  });
  const tx = sockets.open({ interfaceName: sendIf, ethertype: ETHERTYPE_ARP, onFrame: () => undefined });
  const arpFrame = encodeArpRequest(tx.mac, parseIP('192.0.2.1'), target);
  const nsFrame = encodeNeighborSolicitation(tx.mac, parseIP('2001:db8::1'), target6);
  for (let i = 0; i < perCycle; i++) {
    if (tx.send(arpFrame)) sent++;
    if (tx.send(nsFrame)) sent++;
    // Flow control: let the poller catch up every 50 frames, so the test measures loss in
    // our code, not the socket buffer of a machine whose event loop is starved by others.
    if (i % 50 === 49) await until(() => cycleArp >= i + 1 && cycleNs >= i + 1, 2_000);
  }
  await until(() => cycleArp >= perCycle && cycleNs >= perCycle, 2_000);
  arpReceived += cycleArp;
  nsReceived += cycleNs;
  rx.close();
  rx6.close();
  tx.close();
}
process.stdout.write(`${JSON.stringify({ cycles, sent, arpReceived, nsReceived, otherReceived, openAfter: sockets.openCount, stats: sockets.stats, rssMb: Math.round(process.memoryUsage().rss / 1e6) })}\n`);
