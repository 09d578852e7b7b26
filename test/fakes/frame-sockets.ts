import type { FrameSocket, FrameSocketFactory, FrameSocketOptions, NetworkInterface } from '../../src/providers/metallb-like/speaker/frame-socket.js';

export interface FakeSocket extends FrameSocket {
  readonly options: FrameSocketOptions;
  readonly sent: Buffer[];
  readonly groups: Set<string>;
  closed: boolean;
  /** Delivers a frame as if it arrived on the interface. */
  receive(frame: Buffer): void;
}

/** Records every socket opened, every frame sent and every multicast group joined. */
export class FakeFrameSockets implements FrameSocketFactory {
  readonly sockets: FakeSocket[] = [];

  constructor(readonly interfaces: NetworkInterface[]) {}

  open(options: FrameSocketOptions): FakeSocket {
    const iface = this.interfaces.find((i) => i.name === options.interfaceName);
    if (!iface) throw new Error(`interface ${options.interfaceName} not found`);
    const socket: FakeSocket = {
      options,
      interfaceName: iface.name,
      ifindex: iface.ifindex,
      mac: iface.mac,
      sent: [],
      groups: new Set(),
      closed: false,
      send(frame) {
        if (this.closed) throw new Error('send on a closed socket');
        this.sent.push(frame);
        return true;
      },
      joinMulticast(mac) {
        this.groups.add(mac);
      },
      leaveMulticast(mac) {
        this.groups.delete(mac);
      },
      close() {
        this.closed = true;
      },
      receive(frame) {
        if (!this.closed) options.onFrame(frame);
      },
    };
    this.sockets.push(socket);
    return socket;
  }

  open_(name: string, ethertype: number): FakeSocket[] {
    return this.sockets.filter((s) => !s.closed && s.interfaceName === name && s.options.ethertype === ethertype);
  }

  discover = (only?: readonly string[]): Promise<NetworkInterface[]> =>
    Promise.resolve(this.interfaces.filter((i) => !only || only.length === 0 || only.includes(i.name)));
}
