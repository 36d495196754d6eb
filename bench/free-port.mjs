// A TCP port free on 127.0.0.1 right now, for a server a benchmark starts (shared by the benches).
import { createServer } from 'node:net';

export const freePort = () =>
  new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
