// The body of the document-parsing worker thread (control/api/parse-pool.ts): parses what it is
// sent with parseDocuments and answers with the objects or the DocumentError's message.
import { parentPort } from 'node:worker_threads';
import { DocumentError, parseDocuments } from './documents';

export interface ParseJob {
  readonly text: string;
  readonly source: string;
}

export type ParseAnswer = { readonly ok: true; readonly docs: unknown[] } | { readonly ok: false; readonly document: boolean; readonly message: string };

// Loaded: the pool starts a job's time limit only from here.
parentPort?.postMessage('ready');
parentPort?.on('message', (job: ParseJob) => {
  let answer: ParseAnswer;
  try {
    answer = { ok: true, docs: parseDocuments(job.text, job.source) };
  } catch (err) {
    answer = { ok: false, document: err instanceof DocumentError, message: err instanceof Error ? err.message : String(err) };
  }
  parentPort?.postMessage(answer);
});
