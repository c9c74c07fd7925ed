/**
 * SharedReads (activities/connectors/shared-reads.ts): parallel actions share reads, and a read
 * after a write always began after that write ended.
 */
import assert from 'node:assert/strict';
import { SharedReads } from '../activities/connectors/shared-reads.js';

/** A list held in memory whose reads and writes take a tick, recording the order of events. */
function fakeList(initial: string[]) {
  let members = [...initial];
  const events: string[] = [];
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  return {
    events,
    async read() {
      events.push('read');
      const seen = [...members];
      await tick();
      return seen;
    },
    async remove(member: string) {
      events.push(`remove ${member}`);
      await tick();
      members = members.filter((m) => m !== member);
    },
  };
}

describe('shared reads of one list by parallel actions', () => {
  it('reads before a write join one read under way', async () => {
    const list = fakeList(['a', 'b', 'c']);
    const reads = new SharedReads();
    const answers = await Promise.all([1, 2, 3].map(() => reads.current('groups', () => list.read())));
    assert.deepEqual(answers, [
      ['a', 'b', 'c'],
      ['a', 'b', 'c'],
      ['a', 'b', 'c'],
    ]);
    assert.deepEqual(list.events, ['read']);
  });

  it('each read-back includes its own write: parallel removals are read back together, and all absent', async () => {
    const list = fakeList(['a', 'b', 'c']);
    const reads = new SharedReads();
    const results = await Promise.all(
      ['a', 'b', 'c'].map((m) =>
        reads.afterWrite(
          'groups',
          () => list.remove(m),
          () => list.read(),
        ),
      ),
    );
    for (const read of results) assert.deepEqual(read, []);
    assert.deepEqual(list.events, ['remove a', 'remove b', 'remove c', 'read']);
  });

  it('a read under way when a write ends is not used for that write: a new one is begun', async () => {
    const list = fakeList(['a', 'b']);
    const reads = new SharedReads();
    const before = reads.current('groups', () => list.read());
    const read = await reads.afterWrite(
      'groups',
      () => list.remove('a'),
      () => list.read(),
    );
    assert.deepEqual(await before, ['a', 'b']);
    assert.deepEqual(read, ['b']);
    assert.deepEqual(list.events, ['read', 'remove a', 'read']);
  });

  it('a write that hangs delays the others’ read-back by at most gatherMs, and a failed read fails each joiner', async () => {
    const list = fakeList(['a', 'b']);
    const reads = new SharedReads(20);
    const hanging = reads.afterWrite(
      'groups',
      () => new Promise<void>(() => undefined),
      () => list.read(),
    );
    const read = await reads.afterWrite(
      'groups',
      () => list.remove('a'),
      () => list.read(),
    );
    assert.deepEqual(read, ['b']);
    void hanging;
    const failing = () => Promise.reject(new Error('HTTP 500'));
    const joined = await Promise.allSettled([reads.current('k', failing), reads.current('k', failing)]);
    assert.deepEqual(
      joined.map((j) => j.status),
      ['rejected', 'rejected'],
    );
    assert.deepEqual(await reads.current('k', async () => 'fresh'), 'fresh', 'a failed read is not kept');
  });
});
