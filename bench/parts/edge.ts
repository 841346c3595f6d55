import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type WebSocket from 'ws';
import { writeConfigAtomic } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { type IssuedCertificate, TestCa } from '../../harness/tls.js';
import { echo, openWebSocket, WsEchoUpstream } from '../../harness/websocket.js';
import { caddyLoad } from '../lib/caddy.js';
import { type DaemonProcess, startDaemonProcess, stopProcess } from '../lib/daemon-process.js';
import { runH2load } from '../lib/h2load.js';
import { singleSocketAgent } from '../lib/http.js';
import { measure } from '../lib/load.js';
import { caddyBenchConfig, caddyProxyRoute, caddyRespondRoute, startBackend, startCaddy } from '../lib/procs.js';
import { requireTool } from '../lib/util.js';
import { runWrk, type WrkResult } from '../lib/wrk.js';

/** One proxy's numbers in a side-by-side part. */
interface Side {
  baseline_rps: number;
  storm_rps: number;
  errors: number;
  reloads: number;
}

/** The two certificates a rotation alternates between, written over the same two files. */
interface Rotation {
  certFile: string;
  keyFile: string;
  versions: [IssuedCertificate, IssuedCertificate];
}

async function rotation(dir: string): Promise<Rotation> {
  const ca = await TestCa.create(dir);
  const versions: [IssuedCertificate, IssuedCertificate] = [await ca.issue('v1', ['localhost']), await ca.issue('v2', ['localhost'])];
  const certFile = join(dir, 'site.crt');
  const keyFile = join(dir, 'site.key');
  await writeFile(certFile, versions[0].certPem);
  await writeFile(keyFile, versions[0].keyPem);
  return { certFile, keyFile, versions };
}

/** Write version `i % 2` over the files (key first): what a renewal does. */
async function rotate(r: Rotation, i: number): Promise<void> {
  const next = r.versions[i % 2]!;
  await writeFile(r.keyFile, next.keyPem);
  await writeFile(r.certFile, next.certPem);
}

function hotconfTls(port: number, backend: number, r: Rotation, revision: number): Record<string, unknown> {
  return {
    upstreams: { api: { targets: [`http://127.0.0.1:${backend}`] } },
    listeners: [
      {
        name: 'web-tls',
        listen: `127.0.0.1:${port}`,
        tls: { certificates: [{ cert_file: r.certFile, key_file: r.keyFile }] },
        routes: [
          { path_prefix: '/api', upstream: 'api' },
          { path_prefix: '/revision', respond: { status: 200, body: `r${revision}` } },
        ],
      },
    ],
  };
}

function caddyTls(port: number, admin: number, backend: number, r: Rotation, revision: number): string {
  return caddyBenchConfig({
    port,
    admin,
    server: { protocols: ['h1', 'h2'], tls_connection_policies: [{ certificate_selection: { any_tag: ['bench'] } }] },
    routes: [caddyProxyRoute(`127.0.0.1:${backend}`, '/api*'), caddyRespondRoute('/revision', `r${revision}`)],
    apps: { tls: { certificates: { load_files: [{ certificate: r.certFile, key: r.keyFile, tags: ['bench'] }] } } },
  });
}

function side(m: { baseline: WrkResult; storm: WrkResult; reloads: number }): Side {
  return {
    baseline_rps: Math.round(m.baseline.requests_per_s),
    storm_rps: Math.round(m.storm.requests_per_s),
    errors: m.baseline.socket_errors + m.baseline.non_2xx + m.storm.socket_errors + m.storm.non_2xx,
    reloads: m.reloads,
  };
}

/**
 * Run `load` against hotconf and then Caddy, each behind a TLS listener in front of the same
 * backend, at 10 reloads/s of which one in five also rotates the certificate (new files, then
 * the reload: hotconf's `POST /reload`, Caddy's `/load`).
 */
async function tlsSideBySide(quick: boolean, tag: string, load: (url: string, durationS: number) => Promise<WrkResult>): Promise<Record<string, number>> {
  const durationS = quick ? 5 : 15;
  requireTool('caddy', 'apt-get install -y caddy');
  const dir = await mkdtemp(join(tmpdir(), `hotconf-${tag}-`));
  const [backendPort, port, admin, caddyPort, caddyAdmin] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const backend = await startBackend(backendPort);
  try {
    const r = await rotation(dir);
    const file = join(dir, 'hotconf.yaml');
    await writeConfigAtomic(file, hotconfTls(port, backendPort, r, 0));
    const daemon = await startDaemonProcess(['--config', file, '--no-watch'], `127.0.0.1:${admin}`);
    const agent = singleSocketAgent();
    let hot: Side;
    try {
      hot = side(
        await measure(
          `https://127.0.0.1:${port}/api`,
          durationS,
          async (i) => {
            if (i % 5 === 0) await rotate(r, i / 5);
            await writeConfigAtomic(file, hotconfTls(port, backendPort, r, i));
            const res = await httpRequest(`${daemon.admin}/reload`, { method: 'POST', agent });
            if (res.status !== 200) throw new Error(`hotconf reload ${i}: ${res.status} ${res.body}`);
          },
          load,
        ),
      );
    } finally {
      agent.destroy();
      await daemon.stop();
    }
    await rotate(r, 0);
    const caddy = await startCaddy(dir, caddyTls(caddyPort, caddyAdmin, backendPort, r, 0), `http://127.0.0.1:${caddyAdmin}/config/`);
    let cad: Side;
    try {
      cad = side(
        await measure(
          `https://127.0.0.1:${caddyPort}/api`,
          durationS,
          async (i) => {
            if (i % 5 === 0) await rotate(r, i / 5);
            await caddyLoad(caddyAdmin, caddyTls(caddyPort, caddyAdmin, backendPort, r, i));
          },
          load,
        ),
      );
    } finally {
      await caddy.stop();
    }
    return {
      baseline_rps: hot.baseline_rps,
      storm_rps: hot.storm_rps,
      errors: hot.errors,
      storm_reloads: hot.reloads,
      caddy_baseline_rps: cad.baseline_rps,
      caddy_storm_rps: cad.storm_rps,
      caddy_errors: cad.errors,
      caddy_storm_reloads: cad.reloads,
      duration_s: durationS,
    };
  } finally {
    await stopProcess(backend);
    await rm(dir, { recursive: true, force: true });
  }
}

/** HTTPS keepalive storm: wrk over TLS (HTTP/1.1), 10 reloads/s, one in five a certificate rotation; hotconf and Caddy. */
export async function httpsStormPart(quick: boolean): Promise<Record<string, number>> {
  requireTool('wrk', 'apt-get install -y wrk');
  return tlsSideBySide(quick, 'https-storm', (url, durationS) => runWrk(url, durationS));
}

/** HTTP/2 throughput with h2load (8 connections, 16 streams each), under the same storm; hotconf and Caddy. */
export async function h2Part(quick: boolean): Promise<Record<string, number>> {
  requireTool('h2load', 'apt-get install -y nghttp2-client');
  return tlsSideBySide(quick, 'h2', (url, durationS) => runH2load(url, durationS));
}

export interface WsSurvivalResult {
  tunnels: number;
  reloads: number;
  open_after: number;
  echoing_after: number;
  caddy_open_after: number;
  caddy_echoing_after: number;
}

/** Open `count` tunnels to `url`, run `reloads` reloads, then count the tunnels still open and still echoing. */
async function survival(url: string, count: number, reloads: number, reload: (i: number) => Promise<void>): Promise<{ open: number; echoing: number }> {
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i += 1) sockets.push(await openWebSocket(url, { autoClose: false }));
  try {
    for (let i = 1; i <= reloads; i += 1) await reload(i);
    const open = sockets.filter((ws) => ws.readyState === ws.OPEN);
    const echoed = await Promise.all(
      open.map((ws, i) =>
        Promise.race([
          echo(ws, `m${i}`).then(
            (text) => text === `m${i}`,
            () => false,
          ),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000).unref()),
        ]),
      ),
    );
    return { open: open.length, echoing: echoed.filter(Boolean).length };
  } finally {
    for (const ws of sockets) ws.terminate();
  }
}

/**
 * WebSocket survival: 200 tunnels through each proxy to the same echo upstream, then 50 reloads
 * that change an unrelated route; how many tunnels are still open, and still echo, afterwards.
 */
export async function wsSurvivalPart(quick: boolean): Promise<WsSurvivalResult> {
  const tunnels = 200;
  const reloads = quick ? 20 : 50;
  const dir = await mkdtemp(join(tmpdir(), 'hotconf-ws-'));
  const upstream = await WsEchoUpstream.start({ autoClose: false });
  const [port, admin, caddyPort, caddyAdmin] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const hotconf = (revision: number) => ({
    upstreams: { echo: { targets: [upstream.origin] } },
    listeners: [
      {
        name: 'web',
        listen: `127.0.0.1:${port}`,
        routes: [
          { path_prefix: '/ws', upstream: 'echo' },
          { path_prefix: '/revision', respond: { status: 200, body: `r${revision}` } },
        ],
      },
    ],
  });
  const caddyConfig = (revision: number) =>
    caddyBenchConfig({
      port: caddyPort,
      admin: caddyAdmin,
      routes: [caddyProxyRoute(upstream.origin.slice('http://'.length), '/ws*'), caddyRespondRoute('/revision', `r${revision}`)],
    });
  let daemon: DaemonProcess | undefined;
  try {
    const file = join(dir, 'hotconf.yaml');
    await writeConfigAtomic(file, hotconf(0));
    daemon = await startDaemonProcess(['--config', file, '--no-watch'], `127.0.0.1:${admin}`);
    const agent = singleSocketAgent();
    const hot = await survival(`ws://127.0.0.1:${port}/ws`, tunnels, reloads, async (i) => {
      await writeConfigAtomic(file, hotconf(i));
      const res = await httpRequest(`${daemon!.admin}/reload`, { method: 'POST', agent });
      if (res.status !== 200) throw new Error(`hotconf reload ${i}: ${res.status} ${res.body}`);
    });
    agent.destroy();
    await daemon.stop();
    const caddy = await startCaddy(dir, caddyConfig(0), `http://127.0.0.1:${caddyPort}/revision`);
    let cad: { open: number; echoing: number };
    try {
      cad = await survival(`ws://127.0.0.1:${caddyPort}/ws`, tunnels, reloads, (i) => caddyLoad(caddyAdmin, caddyConfig(i)));
    } finally {
      await caddy.stop();
    }
    return { tunnels, reloads, open_after: hot.open, echoing_after: hot.echoing, caddy_open_after: cad.open, caddy_echoing_after: cad.echoing };
  } finally {
    await daemon?.stop();
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  }
}
