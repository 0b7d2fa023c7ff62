/**
 * A loopback TCP relay between one client and one etcd member that can be frozen: the
 * connections stay open but nothing passes, which is what a network partition looks
 * like to the client (calls hang, nothing is refused). Cheaper than iptables and needs
 * no privileges; the authority under test connects through it, everyone else directly.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface FreezableProxy {
  /** http://127.0.0.1:<port>, to use as an etcd endpoint. */
  url: string;
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

export async function startProxy(target: string): Promise<FreezableProxy> {
  const { hostname, port } = new URL(target);
  const pairs = new Set<[Socket, Socket]>();
  let frozen = false;
  const wire = (client: Socket, upstream: Socket) => {
    client.pipe(upstream);
    upstream.pipe(client);
  };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    if (!frozen) wire(client, upstream);
    else {
      client.pause();
      upstream.pause();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const local = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${local}`,
    freeze() {
      frozen = true;
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    thaw() {
      frozen = false;
      for (const [a, b] of pairs) {
        wire(a, b);
        a.resume();
        b.resume();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        pairs.clear();
        server.close(() => resolve());
      }),
  };
}
