import type { Etcd3, IWatchResponse } from 'etcd3';
import sinon from 'sinon';

/**
 * Fault for the etcd source specs: the next watch stream `client` opens delivers its `created`
 * response and swallows every event, as a stream stuck behind a broken proxy would; later
 * streams are untouched. Returns whether the muted stream was opened yet. Restored by the
 * specs' sinon sandbox reset.
 */
export function muteNextWatch(client: Etcd3): () => boolean {
  const watch = client.watchClient.watch.bind(client.watchClient);
  let muted = false;
  sinon.stub(client.watchClient, 'watch').callsFake(async (options) => {
    const stream = await watch(options);
    if (muted) return stream;
    muted = true;
    const on = stream.on.bind(stream) as (event: string, fn: (...args: unknown[]) => void) => typeof stream;
    (stream as { on: typeof on }).on = (event, fn) =>
      on(event, event === 'data' ? (...args: unknown[]) => (args[0] as IWatchResponse).created && fn(...args) : fn);
    return stream;
  });
  return () => muted;
}
