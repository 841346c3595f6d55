import { parentPort } from 'node:worker_threads';
import { IncrementalLoader } from '../config/incremental.js';
import { ConfigInvalidError, errorMessage } from '../core/errors.js';
import { IncrementalDocument } from './incremental-document.js';
import { type FragmentsRequest, FragmentsRequestSchema, type ParseReply, type ParseRequest, ParseRequestSchema } from './parse-protocol.js';
import { WorkerFragments } from './worker-fragments.js';

// The worker thread of `ConfigParser` (parser.ts): parse, validate and hash each document it is
// sent, one at a time, and send the outcome back. Nothing here touches the serving thread's state.
// The files a config references (`${file:/path}`) are read here, synchronously: this thread may
// block, the serving one never does. Its `process.env` is the process's own (SHARE_ENV), so a
// `${env:NAME}` is read as it is at each reload.
//
// Documents are loaded by one `IncrementalDocument` (a one-route edit re-reads that route alone;
// a document validates and hashes at the cost of what changed since the last valid one). Each
// valid config after the first is sent as its differences from the last one sent, which
// `ConfigParser` keeps: a new worker (the first, or one replacing a dead one) sends its first
// config whole. Fragments are loaded the same way, by `WorkerFragments`, for the few that changed last.

const port = parentPort;
if (!port) throw new Error('parse-worker runs as the worker thread of a ConfigParser');

/** The single document's versions (`ParseRequest`s). */
const document = new IncrementalDocument(new IncrementalLoader());
/** The fragments of `FragmentsRequest`s, with incremental state for those changed last. */
const workerFragments = new WorkerFragments();

port.on('message', (message: unknown) => {
  // A malformed request is a bug in ConfigParser: the throw ends the worker, which rejects what it had.
  const fragments = message !== null && typeof message === 'object' && 'fragments' in message;
  port.postMessage(fragments ? answerFragments(FragmentsRequestSchema.parse(message)) : answer(ParseRequestSchema.parse(message)));
});

function answerFragments(request: FragmentsRequest): ParseReply {
  const { id } = request;
  try {
    return { id, kind: 'fragments', results: workerFragments.answer(request) };
  } catch (error) {
    return { id, kind: 'crashed', message: errorMessage(error) };
  }
}

function answer({ id, text, origin, maxDocumentBytes }: ParseRequest): ParseReply {
  try {
    const sent = document.load(id, text, { origin, maxDocumentBytes });
    return 'config' in sent ? { id, kind: 'loaded', ...sent } : { id, kind: 'changed', ...sent };
  } catch (error) {
    if (error instanceof ConfigInvalidError) return { id, kind: 'invalid', issues: [...error.issues], origin: error.origin };
    return { id, kind: 'crashed', message: errorMessage(error) };
  }
}
