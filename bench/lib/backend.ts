/**
 * The upstream both proxies forward to in the storm part: a minimal keepalive HTTP server,
 * run as its own process (`node --import tsx bench/lib/backend.ts PORT`) so it does not share
 * an event loop with what is measured.
 */
import { createServer } from 'node:http';

const port = Number(process.argv[2]);
const body = Buffer.from('ok\n');
const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.byteLength });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
});
