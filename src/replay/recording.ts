/**
 * A recording read into memory for replay: every line of an NDJSON file in the recording format
 * (contract/recording.ts: what `aiot-sim record` and `aiot-sim run --trace` write), checked line
 * by line. A file with bad lines is refused as a whole, before anything is sent, with every
 * problem naming the file, the line and the field.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseRecordLine, type RecordedMessage } from '../contract/recording.js';
import { displayPath } from '../catalog/yaml.js';
import { AiotSimError, ValidationError, type Problem } from '../errors.js';

/** At most this many problems are listed (then how many more there were). */
const MAX_PROBLEMS = 20;

export interface Recording {
  /** The file as messages name it (relative to the working directory when inside it). */
  file: string;
  messages: RecordedMessage[];
  /** Lines whose `ts` is earlier than the line before: replayed at the previous line's time (file order is kept). */
  backwards: number;
  /** Last ts - first ts, ms. */
  spanMs: number;
}

/** Read and check a recording; throws ValidationError naming every bad line, AiotSimError when the file cannot be read. */
export async function readRecording(path: string): Promise<Recording> {
  const file = displayPath(path);
  const messages: RecordedMessage[] = [];
  const problems: Problem[] = [];
  let more = 0;
  let lineNo = 0;
  let backwards = 0;
  const input = createReadStream(path, { encoding: 'utf8' });
  const opened = new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', reject);
  });
  try {
    await opened;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new AiotSimError('E_RECORDING', 'input', `${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  for await (const raw of createInterface({ input, crlfDelay: Infinity })) {
    lineNo++;
    const line = raw.trim();
    if (line === '') continue;
    const m = parseRecordLine(line, file, lineNo);
    if (Array.isArray(m)) {
      for (const p of m) if (problems.length < MAX_PROBLEMS) problems.push(p); else more++;
      continue;
    }
    const prev = messages.at(-1);
    if (prev && m.ts < prev.ts) {
      backwards++;
      m.ts = prev.ts;
    }
    messages.push(m);
  }
  if (more) problems.push({ file, path: '', message: `and ${more} more problem${more === 1 ? '' : 's'}` });
  if (problems.length) throw new ValidationError(problems);
  if (messages.length === 0) throw new ValidationError([{ file, path: '', message: 'no messages (an empty recording)' }]);
  return { file, messages, backwards, spanMs: messages.at(-1)!.ts - messages[0]!.ts };
}
