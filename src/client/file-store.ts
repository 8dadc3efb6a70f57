import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Attachment, ChatEvent, ChatMessage, ReadPosition, Visitor } from '../../generated/chat/v1/chat.js';
import type { LocalChatState, LocalStore, PendingMessage } from './local-store.js';

/**
 * The file format written, and the only one `load` accepts: a newer app's files are refused.
 * Fields added since (messages' `attachments` and `event`, the outbox's too, `readPositions`,
 * `unsentReads`) are optional in the file, so files written before them still load: with no
 * attachments, events or read positions. (An older app reading a newer file ignores them.)
 */
export const FILE_FORMAT_VERSION = 1;

// Encoded names stay far below the 255-byte name limit of common file systems, leaving room for
// the `.json` and temporary-file suffixes; longer ones are replaced by a hash.
const maxEncodedNameChars = 200;
const tempFilePattern = /\.json\.[0-9a-f]{16}\.tmp$/;

/** A chat file this store cannot read: not JSON, not a chat state, or another format version. */
export class LocalStoreError extends Error {
  override readonly name = 'LocalStoreError';

  /** `file` is the offending file's path, also named in the message. */
  constructor(readonly file: string, reason: string, options?: ErrorOptions) {
    super(`local chat file ${file} ${reason}`, options);
  }
}

/**
 * The name of the file that holds a chat. Only `[a-z0-9_-]` pass through; every other UTF-16
 * unit becomes `%XXXX`. So no id can name a path separator, `.` or `..`, and ids that differ
 * only in case or Unicode normalisation stay apart on macOS and Windows, which fold both.
 * Names that would be too long become `~` and a SHA-256 (`~` never appears in an encoded name).
 */
export function chatFileName(chatId: string): string {
  let encoded = '';
  for (let i = 0; i < chatId.length; i++) {
    const char = chatId[i]!;
    encoded += /[a-z0-9_-]/.test(char)
      ? char
      : `%${chatId.charCodeAt(i).toString(16).toUpperCase().padStart(4, '0')}`;
    if (encoded.length > maxEncodedNameChars) {
      return `~${createHash('sha256').update(chatId, 'utf16le').digest('hex')}.json`;
    }
  }
  return `${encoded}.json`;
}

/**
 * Keeps each chat as one JSON file in a directory, for agent desktop apps that must survive a
 * restart. A save that resolves is on disk (file and directory entry fsynced), and a crash at
 * any moment leaves either the previous or the new state, because each save writes a new file
 * and renames it over the old one. Saves of one chat run in call order; different chats' saves
 * run concurrently. The directory belongs to one store at a time: a store removes temporary
 * files it finds there, which would break another process saving into the same directory.
 */
export class FileStore implements LocalStore {
  // Per file, the end of the queue of operations on it; removed once the queue drains.
  private readonly queues = new Map<string, Promise<unknown>>();
  private ready: Promise<void> | undefined;

  constructor(readonly directory: string) {}

  /** The path of the file that holds `chatId`, whether or not it exists yet. */
  pathOf(chatId: string): string {
    return path.join(this.directory, chatFileName(chatId));
  }

  /** The chat's last saved state; undefined if never saved; LocalStoreError if unreadable. */
  async load(chatId: string): Promise<LocalChatState | undefined> {
    const file = this.pathOf(chatId);
    // Queued behind this chat's pending saves, so a load sees every save called before it.
    return this.enqueue(file, async () => {
      const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      });
      return text === undefined ? undefined : decode(file, text, chatId);
    });
  }

  /** Replaces the chat's saved state; resolves once the new state is durable. */
  async save(state: LocalChatState): Promise<void> {
    // Encoded now, so the state as it is at the call is saved, whatever the caller changes later.
    const text = encode(state);
    const file = this.pathOf(state.chatId);
    return this.enqueue(file, () => this.replace(file, text));
  }

  private enqueue<T>(file: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(file) ?? Promise.resolve();
    const result = previous.then(async () => {
      await this.prepare();
      return operation();
    });
    // A failed operation fails its caller only; the next one still runs.
    const tail = result.catch(() => undefined);
    this.queues.set(file, tail);
    void tail.then(() => {
      if (this.queues.get(file) === tail) this.queues.delete(file);
    });
    return result;
  }

  /** Creates the directory and removes temporary files a crash left, once per store. */
  private prepare(): Promise<void> {
    this.ready ??= (async () => {
      const created = await mkdir(this.directory, { recursive: true, mode: 0o700 });
      // New directories' entries must be durable too, or the first save could vanish with them.
      for (let dir = path.resolve(this.directory); created !== undefined; dir = path.dirname(dir)) {
        await syncDirectory(path.dirname(dir));
        if (dir === path.resolve(created)) break;
      }
      for (const name of await readdir(this.directory)) {
        if (!tempFilePattern.test(name)) continue;
        await unlink(path.join(this.directory, name)).catch(() => undefined);
      }
    })().catch((error: unknown) => {
      this.ready = undefined; // let a later call try again, e.g. once the disk is mounted
      throw error;
    });
    return this.ready;
  }

  private async replace(file: string, text: string): Promise<void> {
    const temp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
    let renamed = false;
    try {
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(text, 'utf8');
        // The data must be on disk before the rename can make it the chat's file.
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, file);
      renamed = true;
    } finally {
      if (!renamed) await unlink(temp).catch(() => undefined);
    }
    // The rename is only durable once the directory is.
    await syncDirectory(this.directory);
  }
}

async function syncDirectory(directory: string): Promise<void> {
  // Windows cannot open a directory to sync it; there a power cut may lose the latest
  // completed save, though a crash still leaves a whole file.
  if (process.platform === 'win32') return;
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// Keys are typed against the generated interfaces, so a field added to the proto fails to compile
// here instead of being silently dropped from the file.
type Stored<T> = { [K in keyof T]: unknown };

function encode(state: LocalChatState): string {
  const messages = state.messages.map(
    (m, i): Stored<ChatMessage> => ({
      id: m.id,
      dataOffset: m.dataOffset,
      content: m.content,
      messageType: m.messageType,
      sendTime: encodeDate(m.sendTime, `messages[${i}].sendTime`),
      senderId: m.senderId,
      attachments: m.attachments.map(encodeAttachment),
      // `null` as for the seal: a key present but undefined stays so over a load.
      ...('event' in m && { event: m.event ? encodeEvent(m.event) : null }),
      // The server's seal, kept as received so a rebuild can give it back; `null` as for the
      // epoch below. Files saved before seals existed have no key, and load without one.
      ...('seal' in m && { seal: m.seal ?? null }),
    }),
  );
  const outbox = state.outbox.map(
    (p): Stored<PendingMessage> => ({
      id: p.id,
      content: p.content,
      messageType: p.messageType,
      ...(p.attachments?.length && { attachments: p.attachments.map(encodeAttachment) }),
      ...('event' in p && { event: p.event ? encodeEvent(p.event) : null }),
    }),
  );
  const file: Record<string, unknown> = {
    version: FILE_FORMAT_VERSION,
    chatId: state.chatId,
    messages,
    outbox,
  };
  // `null` keeps a key present but undefined, so the loaded state deep-equals the saved one.
  if ('visitor' in state) {
    const v = state.visitor;
    file.visitor = v ? { id: v.id, name: v.name, email: v.email } satisfies Stored<Visitor> : null;
  }
  if ('beginTime' in state) file.beginTime = encodeDate(state.beginTime, 'beginTime');
  if ('epoch' in state) file.epoch = state.epoch ?? null;
  // Read positions are a later addition: a file without the key loads with none.
  if (state.readPositions !== undefined) {
    file.readPositions = state.readPositions.map((p): Stored<ReadPosition> => ({ readerId: p.readerId, messageId: p.messageId, ...('seal' in p && { seal: p.seal ?? null }) }));
  }
  if (state.unsentReads !== undefined) file.unsentReads = [...state.unsentReads];
  return JSON.stringify(file);
}

function encodeAttachment(a: Attachment): Stored<Attachment> {
  return { uri: a.uri, mediaType: a.mediaType, sizeBytes: a.sizeBytes, sha256: a.sha256, name: a.name };
}

function encodeEvent(e: ChatEvent): Stored<ChatEvent> {
  return { kind: e.kind, participantId: e.participantId, toParticipantId: e.toParticipantId, reason: e.reason };
}

function decodeAttachments(m: Fields, where: string): Attachment[] {
  if (!m.has('attachments')) return [];
  return m.array('attachments').map((value, i): Attachment => {
    const a = fields(value, `${where}.attachments[${i}]`);
    return { uri: a.string('uri'), mediaType: a.string('mediaType'), sizeBytes: a.integer('sizeBytes'), sha256: a.string('sha256'), name: a.string('name') };
  });
}

function decodeEvent(m: Fields, where: string): ChatEvent | undefined {
  if (!m.has('event') || m.get('event') === null) return undefined;
  const e = fields(m.get('event'), `${where}.event`);
  return { kind: e.integer('kind'), participantId: e.string('participantId'), toParticipantId: e.string('toParticipantId'), reason: e.string('reason') };
}

function encodeDate(date: Date | undefined, field: string): string | null {
  if (date === undefined) return null;
  if (Number.isNaN(date.getTime())) throw new RangeError(`cannot save an invalid Date as ${field}`);
  return date.toISOString();
}

/** Thrown while decoding; turned into a LocalStoreError that names the file. */
class Malformed extends Error {}

function decode(file: string, text: string, chatId: string): LocalChatState {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new LocalStoreError(file, 'is not valid JSON', { cause: error });
  }
  try {
    const root = fields(data, 'the file');
    const version = root.get('version');
    if (version === undefined) throw new Malformed('has no format version');
    if (version !== FILE_FORMAT_VERSION) {
      const found = JSON.stringify(version);
      throw new Malformed(`has format version ${found}; this app reads only ${FILE_FORMAT_VERSION}`);
    }
    const storedId = root.string('chatId');
    if (storedId !== chatId) {
      throw new Malformed(`holds chat ${JSON.stringify(storedId)}, not ${JSON.stringify(chatId)}`);
    }
    const state: { -readonly [K in keyof LocalChatState]: LocalChatState[K] } = {
      chatId,
      messages: root.array('messages').map((value, i): ChatMessage => {
        const m = fields(value, `messages[${i}]`);
        return {
          id: m.string('id'),
          dataOffset: m.integer('dataOffset'),
          content: m.string('content'),
          messageType: m.integer('messageType'),
          sendTime: m.date('sendTime'),
          senderId: m.string('senderId'),
          attachments: decodeAttachments(m, `messages[${i}]`),
          ...(m.has('event') && { event: decodeEvent(m, `messages[${i}]`) }),
          ...(m.has('seal') && { seal: m.get('seal') === null ? undefined : m.string('seal') }),
        };
      }),
      outbox: root.array('outbox').map((value, i): PendingMessage => {
        const p = fields(value, `outbox[${i}]`);
        const [id, content] = [p.string('id'), p.string('content')];
        const attachments = decodeAttachments(p, `outbox[${i}]`);
        const event = decodeEvent(p, `outbox[${i}]`);
        return { id, content, messageType: p.integer('messageType'), ...(attachments.length > 0 && { attachments }), ...(p.has('event') && { event }) };
      }),
    };
    if (root.has('visitor')) {
      const value = root.get('visitor');
      const v = value === null ? undefined : fields(value, 'visitor');
      state.visitor = v && { id: v.string('id'), name: v.string('name'), email: v.string('email') };
    }
    if (root.has('beginTime')) state.beginTime = root.date('beginTime');
    if (root.has('epoch')) state.epoch = root.get('epoch') === null ? undefined : root.string('epoch');
    if (root.has('readPositions')) {
      state.readPositions = root.array('readPositions').map((value, i): ReadPosition => {
        const p = fields(value, `readPositions[${i}]`);
        return { readerId: p.string('readerId'), messageId: p.string('messageId'), ...(p.has('seal') && { seal: p.get('seal') === null ? undefined : p.string('seal') }) };
      });
    }
    if (root.has('unsentReads')) {
      state.unsentReads = root.array('unsentReads').map((v, i) => {
        if (typeof v !== 'string') throw new Malformed(`unsentReads[${i}] is not a string`);
        return v;
      });
    }
    return state;
  } catch (error) {
    if (!(error instanceof Malformed)) throw error;
    throw new LocalStoreError(file, `is not a chat state: ${error.message}`);
  }
}

type Fields = ReturnType<typeof fields>;

/** Typed access to one JSON object's fields; a wrong type names the field's path. */
function fields(value: unknown, where: string) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Malformed(`${where} is not an object`);
  }
  const record = value as Record<string, unknown>;
  function get<T>(key: string, valid: (v: unknown) => v is T, expected: string): T {
    const v = record[key];
    if (!valid(v)) throw new Malformed(`${where}.${key} is not ${expected}`);
    return v;
  }
  return {
    has: (key: string) => Object.hasOwn(record, key),
    get: (key: string) => record[key],
    string: (key: string) => get(key, (v) => typeof v === 'string', 'a string'),
    integer: (key: string) => get(key, (v): v is number => Number.isSafeInteger(v), 'an integer'),
    array: (key: string) => get(key, Array.isArray, 'an array'),
    date(key: string): Date | undefined {
      const v = get(key, isStoredDate, 'an ISO 8601 UTC time or null');
      return v === null ? undefined : new Date(v);
    },
  };
}

// Only the exact form `encodeDate` writes, so a date never shifts over a load/save cycle.
function isStoredDate(v: unknown): v is string | null {
  if (v === null) return true;
  const time = typeof v === 'string' ? Date.parse(v) : Number.NaN;
  return !Number.isNaN(time) && new Date(time).toISOString() === v;
}
