import { parentPort } from 'node:worker_threads';
import { loadConfig } from '../config/parse.js';
import { ConfigInvalidError, errorMessage } from '../core/errors.js';
import { type ParseReply, type ParseRequest, ParseRequestSchema } from './parse-protocol.js';

// The worker thread of `ConfigParser` (parser.ts): parse, validate and hash each document it is
// sent, one at a time, and send the outcome back. Nothing here touches the serving thread's state.
// The files a config references (`${file:/path}`) are read here, synchronously: this thread may
// block, the serving one never does. Its `process.env` is the process's own (SHARE_ENV), so a
// `${env:NAME}` is read as it is at each reload.

const port = parentPort;
if (!port) throw new Error('parse-worker runs as the worker thread of a ConfigParser');

port.on('message', (message: unknown) => {
  // A malformed request is a bug in ConfigParser: the throw ends the worker, which rejects what it had.
  port.postMessage(answer(ParseRequestSchema.parse(message)));
});

function answer({ id, text, origin, maxDocumentBytes }: ParseRequest): ParseReply {
  try {
    const { config, hash, references } = loadConfig(text, { origin, maxDocumentBytes });
    return { id, kind: 'loaded', config, hash, ...(references ? { references: [...references] } : {}) };
  } catch (error) {
    if (error instanceof ConfigInvalidError) return { id, kind: 'invalid', issues: [...error.issues], origin: error.origin };
    return { id, kind: 'crashed', message: errorMessage(error) };
  }
}
