// Runs inside a node's network namespace: listens on that namespace's loopback and relays each
// connection to a Unix socket the test process serves (Unix sockets cross network namespaces),
// so speakers reach the test API server at https://127.0.0.1:PORT, which its certificate names,
// and the host's network configuration is never touched. Args: <port> <unix socket path>.
import { connect, createServer } from 'node:net';
const [port = '', path = ''] = process.argv.slice(2);
const server = createServer((down) => {
  const up = connect({ path });
  const close = (): void => {
    down.destroy();
    up.destroy();
  };
  down.on('error', close).on('close', close).pipe(up);
  up.on('error', close).on('close', close).pipe(down);
});
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
