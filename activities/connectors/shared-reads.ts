/**
 * Reads that parallel actions on one person share, inside one connector instance.
 *
 * After disable_login, a system's other actions run at once, and each reads the same list before
 * and after its write ("is the user still in this group?"). Without sharing, removing nine
 * memberships reads the user's groups eighteen times; against a per-minute rate limit that is
 * what a burst of offboardings waits for. Sharing changes how many requests are made, never what
 * an answer may be trusted for:
 *
 * - `current` (a read before the caller wrote anything) joins a read of the same key already under
 *   way: its answer is no older than the moment it was asked for.
 * - `afterWrite` runs the caller's write, then answers from a read that *began after that write
 *   ended*, so the write is in it. Before reading it waits (at most `gatherMs`) for other writes to
 *   the same key that are under way, so that their writers' read-backs become one read.
 *
 * Errors are shared like answers: every caller that joined a read that failed gets its error.
 */
export class SharedReads {
  private clock = 0;
  private readonly reads = new Map<string, { startedAt: number; answer: Promise<unknown> }>();
  private readonly writes = new Map<string, Set<Promise<unknown>>>();

  constructor(private readonly gatherMs = 2_000) {}

  /** A read of `key` for a caller that has written nothing to it yet. */
  current<T>(key: string, read: () => Promise<T>): Promise<T> {
    return this.share(key, 0, read);
  }

  /** Runs `write`, then answers `read` from a request that began after the write ended. */
  async afterWrite<T>(key: string, write: () => Promise<unknown>, read: () => Promise<T>): Promise<T> {
    const writing = write();
    const pending = this.writes.get(key) ?? new Set();
    this.writes.set(key, pending);
    pending.add(writing);
    try {
      await writing;
    } finally {
      pending.delete(writing);
      if (pending.size === 0) this.writes.delete(key);
    }
    const endedAt = ++this.clock;
    await this.othersWriting(key);
    return this.share(key, endedAt, read);
  }

  /** Waits, at most gatherMs, for the writes to `key` under way now; their failures are theirs. */
  private async othersWriting(key: string): Promise<void> {
    const pending = this.writes.get(key);
    if (!pending?.size) return;
    let timer: NodeJS.Timeout | undefined;
    const gathered = Promise.allSettled([...pending]);
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.gatherMs)));
    await Promise.race([gathered, bound]);
    clearTimeout(timer);
  }

  /** Joins a read of `key` that began after `notBefore` on this clock, or begins one. */
  private share<T>(key: string, notBefore: number, read: () => Promise<T>): Promise<T> {
    const underWay = this.reads.get(key);
    if (underWay && underWay.startedAt > notBefore) return underWay.answer as Promise<T>;
    const startedAt = ++this.clock;
    const answer = read().finally(() => {
      if (this.reads.get(key)?.answer === answer) this.reads.delete(key);
    });
    // A caller that never awaits a shared failure must not make it unhandled.
    answer.catch(() => undefined);
    this.reads.set(key, { startedAt, answer });
    return answer;
  }
}
