import type { ChatMessage, ReadPosition } from '../../generated/chat/v1/chat.js';
import type { RetryingCaller } from './caller.js';
import type { LocalChat } from './local-chat.js';
import type { RebuildEvent } from './options.js';
import type { Transport } from './transport.js';
import { isTooLarge } from './errors.js';
import { splitUploads } from './upload.js';
import { advance, type Offsets, position, readAnswer, rebuildAnswer, rebuildRequest, sideOf } from './wire.js';

/** The smallest upload a rebuild halves down to when a server refuses its size. */
const MIN_UPLOAD_BYTES = 4 * 1024;

/** The last answer of an upload: the server's incarnation and its messages, all of them when `complete`. */
interface Uploaded {
  readonly epoch: string;
  readonly messages: readonly ChatMessage[];
  readonly complete: boolean;
  readonly readPositions: readonly ReadPosition[];
}

/**
 * Brings a session's copy level with its server: reads what is new, page by page, and
 * rebuilds the server whenever it asks (docs/protocol.md). It runs inside the session's
 * serial queue, so nothing else touches the copy meanwhile.
 */
export class CatchUp {
  constructor(
    private readonly chat: LocalChat,
    private readonly caller: RetryingCaller,
    private readonly transport: Pick<Transport, 'address'>,
    private uploadBytes: number,
    private readonly reportRebuild: (event: RebuildEvent) => void,
  ) {}

  /**
   * Reads until caught up; rebuilds the server whenever it asks (or when the copy is
   * unverified). Returns the messages that were new to the copy, saved and announced.
   */
  async run(signal: AbortSignal): Promise<ChatMessage[]> {
    const fresh: ChatMessage[] = [];
    try {
      // A copy with messages but no epoch (say, restored from an old backup) may not be any
      // server's history: never let the missing marker skip the check.
      while (this.chat.unverified) appendAll(fresh, await this.rebuild({ visitor: -1, agent: -1 }, '', signal));
      let straysSent = false;
      for (let refusals = 0; ; ) {
        const read = readAnswer(await this.caller.call('getNewMessage', this.chat.position(), signal));
        if (read.rebuild) {
          await this.caller.pause(refusals++, signal);
          appendAll(fresh, await this.rebuild(read.server, read.epoch, signal));
          continue;
        }
        const taken = this.chat.take(read.messages, read.epoch);
        if (taken === undefined) {
          // Another incarnation answered than the one the read named: it cannot be placed. Read again.
          await this.caller.pause(refusals++, signal);
          continue;
        }
        appendAll(fresh, taken);
        this.chat.noteEnded(read.ended);
        await this.chat.takeReads(read.readPositions);
        const { visitor, agent } = this.chat.offsets;
        const caughtUp = read.messages.length === 0 || (visitor >= read.server.visitor && agent >= read.server.agent);
        if (!caughtUp) continue;
        if (this.chat.copy.strayMessages.length === 0 || straysSent) break;
        // A message of ours lost its offset to another one: have the server place it anew.
        straysSent = true;
        appendAll(fresh, await this.rebuild(read.server, read.epoch, signal));
      }
    } finally {
      // Even when a later call fails (the caller aborted, say), what the copy took is held now
      // and no later read reports it as new: announce it here or never.
      await this.chat.announce(fresh);
    }
    return fresh;
  }

  /**
   * Uploads what the server lacks, in uploads under the size limit, and adopts the server's
   * order. Under the same epoch the server's history extends this copy's, so only what lies
   * above its offsets goes up (an incremental rebuild). Under another epoch (or none) the
   * histories may differ anywhere: everything goes up, and the copy then takes the server's
   * placement of every message, from the answer when it holds the whole chat, else from
   * reading the whole chat from offset 0 first.
   */
  private async rebuild(server: Offsets, serverEpoch: string, signal: AbortSignal): Promise<ChatMessage[]> {
    const { chat } = this;
    const diverged = chat.detects && serverEpoch !== (chat.epoch ?? '');
    const whole = server.visitor < 0 || diverged;
    const strays = chat.copy.strayMessages.length;
    const going = whole ? chat.copy.whole() : chat.copy.above(server);
    // Every upload but a whole copy's first extends one incarnation. Should it reach another
    // (a failover, a restart in between), the server refuses it: taken there, it would be a
    // piece of history without what comes before it. The next read then says what to do.
    const base = whole || !chat.detects ? '' : serverEpoch;
    // Read positions go with the last part: each must name a message the upload carries or the
    // server holds. A whole upload carries every message of the copy; an incremental one carries
    // those above the server's offsets, and the server holds the placed ones below them.
    const uploading = new Set(going.map((m) => m.id));
    const reads = chat.uploadableReads((id) => {
      if (uploading.has(id)) return true;
      const message = chat.copy.get(id);
      if (!message || whole) return false;
      return chat.copy.isPlaced(id) && message.dataOffset <= server[sideOf(message)];
    });
    let answer: Uploaded | undefined;
    for (;;) {
      try {
        answer = await this.upload(going, base, reads, signal);
        break;
      } catch (error) {
        // A server with a smaller request limit than ours: upload again in halves (what it
        // took already adds nothing), and keep the smaller size for this session.
        if (!isTooLarge(error) || this.uploadBytes <= MIN_UPLOAD_BYTES) throw error;
        this.uploadBytes = Math.max(MIN_UPLOAD_BYTES, Math.floor(this.uploadBytes / 2));
      }
    }
    if (!answer) return [];
    const { epoch, complete } = answer;
    let fresh: ChatMessage[] = [];
    if (whole) {
      // After a whole upload the copy takes the server's placement of every message at once:
      // placing some and keeping the rest where another history put them would mix two
      // numberings, and a later upload would send messages up out of order.
      const view = complete ? answer.messages : await this.readAll(epoch, signal);
      if (!view) return []; // that incarnation is gone: the next read says what to do
      fresh = chat.adopt(view, epoch);
    } else {
      chat.follow(epoch);
      if (complete) fresh = chat.take(answer.messages, epoch) ?? [];
    }
    await chat.persist();
    await chat.takeReads(answer.readPositions);
    const uploaded = going.length;
    const reason = server.visitor < 0 ? 'missing' : diverged ? 'diverged' : uploaded === strays && strays > 0 ? 'strays' : 'behind';
    this.reportRebuild({ address: this.transport.address, serverBefore: server, reason, uploaded });
    return fresh;
  }

  /**
   * Uploads `going` in Rebuilds under the upload size, the first extending `base` (empty: a
   * whole copy, merged into any incarnation), each later one the incarnation that took the
   * first. Returns the last answer; undefined when another incarnation refused a part.
   */
  private async upload(going: readonly ChatMessage[], base: string, reads: readonly ReadPosition[], signal: AbortSignal): Promise<Uploaded | undefined> {
    const { chat } = this;
    const uploads = splitUploads(going, this.uploadBytes);
    const parts = uploads.length > 0 ? uploads : [[]];
    let answer: Uploaded = { epoch: '', messages: [], complete: false, readPositions: [] };
    for (const [i, messages] of parts.entries()) {
      const header = { chatId: chat.chatId, offsets: chat.offsets, visitor: chat.visitor, beginTime: chat.beginTime, base };
      const request = rebuildRequest(header, messages, i === parts.length - 1 ? reads : []);
      const answered = rebuildAnswer(await this.caller.call('rebuild', request, signal));
      if (answered.rebuild) return undefined;
      answer = { epoch: answered.epoch, messages: answered.messages, complete: !answered.truncated, readPositions: answered.readPositions };
      chat.visitor ??= answered.visitor;
      chat.beginTime ??= answered.beginTime;
      if (chat.detects) base = answered.epoch;
    }
    return answer;
  }

  /**
   * The whole chat as incarnation `epoch` holds it, read page by page from offset 0;
   * undefined when the server no longer holds that incarnation.
   */
  private async readAll(epoch: string, signal: AbortSignal): Promise<ChatMessage[] | undefined> {
    const messages: ChatMessage[] = [];
    let at: Offsets = { visitor: 0, agent: 0 };
    for (;;) {
      const page = readAnswer(await this.caller.call('getNewMessage', position(this.chat.chatId, at, this.chat.detects ? epoch : ''), signal));
      if (page.rebuild) return undefined;
      if (page.messages.length === 0) return messages;
      appendAll(messages, page.messages);
      at = advance(at, page.messages);
    }
  }
}

/** Appends every item: `push(...items)` passes them as arguments and overflows the stack for a large chat. */
function appendAll<T>(target: T[], items: readonly T[]): void {
  for (const item of items) target.push(item);
}
