import WebSocket from 'ws';
import { httpRequest } from '../../harness/http.js';

/**
 * The main isolate's live heap of a Node process started with `--inspect=127.0.0.1:PORT`, in
 * bytes: connect to its inspector (the WebSocket URL from `http://127.0.0.1:PORT/json/list`),
 * force a full collection (`HeapProfiler.collectGarbage`, V8's low-memory notification: full
 * mark-compact rounds until nothing more is freed), then read `Runtime.getHeapUsage`'s
 * `usedSize` (= `process.memoryUsage().heapUsed`), and close the connection. Worker threads'
 * heaps are not counted. Connecting per call keeps no session attached between calls (nothing
 * of the inspector runs during timed phases, nothing keeps this process alive); every step is
 * bounded by `timeoutMs`.
 * @throws Error naming the step when the inspector does not answer within `timeoutMs` or
 *   answers with an error
 */
export async function liveHeapAfterGc(port: number, timeoutMs = 60_000): Promise<number> {
  const list = await withTimeout(httpRequest(`http://127.0.0.1:${port}/json/list`), timeoutMs, `inspector list on port ${port}`);
  const url = (JSON.parse(list.body) as { webSocketDebuggerUrl?: string }[])[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error(`inspector on port ${port} lists no target: ${list.body}`);
  const ws = new WebSocket(url, { handshakeTimeout: timeoutMs });
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        // Stays attached: a later error (the daemon stopped) closes the socket, which rejects the waiting calls.
        ws.on('error', reject);
      }),
      timeoutMs,
      `inspector connection to ${url}`,
    );
    const call = inspectorCall(ws, timeoutMs);
    await call('HeapProfiler.collectGarbage');
    const usage = (await call('Runtime.getHeapUsage')) as { usedSize: number };
    return usage.usedSize;
  } finally {
    ws.terminate();
  }
}

/** `send(method, params)` over one inspector WebSocket: resolves with the answer's `result`, rejects on its `error`, on close, or after `timeoutMs`. */
function inspectorCall(ws: WebSocket, timeoutMs: number): (method: string, params?: object) => Promise<unknown> {
  let nextId = 0;
  const waiting = new Map<number, { resolve: (result: unknown) => void; reject: (error: Error) => void }>();
  ws.on('message', (data) => {
    const message = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
    if (message.id === undefined) return;
    const call = waiting.get(message.id);
    waiting.delete(message.id);
    if (message.error) call?.reject(new Error(`inspector: ${message.error.message}`));
    else call?.resolve(message.result);
  });
  ws.on('close', () => {
    for (const call of waiting.values()) call.reject(new Error('inspector connection closed'));
    waiting.clear();
  });
  return (method, params = {}) => {
    const id = ++nextId;
    const answered = new Promise<unknown>((resolve, reject) => waiting.set(id, { resolve, reject }));
    ws.send(JSON.stringify({ id, method, params }));
    return withTimeout(answered, timeoutMs, `inspector ${method}`);
  };
}

/** `promise`, or a rejection naming `what` after `timeoutMs` (the timer is cleared either way). */
async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}
