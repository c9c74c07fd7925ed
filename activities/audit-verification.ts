/**
 * `offboard audit verify`: the chain's own consistency, then its completeness against records the
 * database does not hold: the signed checkpoints, and (`--against temporal`) the receipts every
 * workflow keeps in its history (recordAudits results: id, seq and hash of each row it wrote).
 * The attacker assumed here has superuser rights on the database, so every check that names an
 * attack rests on one of those outside records, never on the table alone.
 *
 * Each finding is named (`kind`) and says what was found, where, and by which record.
 */
import type { KeyObject } from 'node:crypto';
import type { AuditReceipt, AuditStore, VerifyResult } from './audit.js';
import { checkpointSignatureValid, keyIdOf, type Checkpoint, type CheckpointStore } from './audit-checkpoints.js';

export type FindingKind =
  | 'chain_broken'
  | 'truncated_tail'
  | 'rewritten'
  | 'checkpoint_signature_invalid'
  | 'checkpoint_unreadable'
  | 'forged_row'
  | 'missing_rows'
  | 'deleted_offboarding'
  | 'unanchored'
  | 'no_history'
  | 'receipt_pending';

/** Failures make `audit verify` exit 4; notices are printed but do not mean tampering. */
export const NOTICE_KINDS: ReadonlySet<FindingKind> = new Set(['unanchored', 'no_history', 'receipt_pending']);

export interface Finding {
  kind: FindingKind;
  message: string;
  seq?: number;
  offboardingId?: string;
}

export interface CheckpointCheck {
  /** Checkpoints kept, and how many had a valid signature from the public key. */
  checkpoints: number;
  validSignatures: number;
  /** The newest checkpoint with a valid signature whose head hash the table still has. */
  latest: Checkpoint | null;
  /** Every validly signed checkpoint whose head hash the table still has, by seq. */
  matching: Checkpoint[];
  findings: Finding[];
}

/**
 * Every kept checkpoint against the table: its signature, the table's hash at its seq (a
 * different one: rewritten; none: the tail was removed), and how much of the table no checkpoint
 * covers yet.
 */
export async function checkCheckpoints(
  store: AuditStore,
  checkpoints: CheckpointStore,
  publicKey: KeyObject | null,
): Promise<CheckpointCheck> {
  const findings: Finding[] = [];
  const { checkpoints: kept, unreadable } = await checkpoints.readAll();
  for (const bad of unreadable)
    findings.push({
      kind: 'checkpoint_unreadable',
      message: `checkpoint file ${checkpoints.location} line ${bad.line} is not a checkpoint (${bad.reason}): the file was edited`,
    });
  const head = await store.head();
  if (publicKey === null) {
    findings.push({
      kind: 'unanchored',
      message: `no public key to check the ${kept.length} checkpoint(s) with: set OFFBOARD_AUDIT_PUBLIC_KEY_FILE or pass --public-key`,
    });
    return { checkpoints: kept.length, validSignatures: 0, latest: null, matching: [], findings };
  }
  const keyId = keyIdOf(publicKey);
  const valid: Checkpoint[] = [];
  for (const checkpoint of kept) {
    if (checkpoint.keyId === keyId && checkpointSignatureValid(checkpoint, publicKey)) valid.push(checkpoint);
    else
      findings.push({
        kind: 'checkpoint_signature_invalid',
        seq: checkpoint.seq,
        message: `the checkpoint of ${checkpoint.at} (seq ${checkpoint.seq}) is not signed by key ${keyId}${checkpoint.keyId === keyId ? '' : ` (it names key ${checkpoint.keyId})`}: forged or altered`,
      });
  }
  const seqs = [...new Set(valid.map((c) => c.seq))];
  const rows = seqs.length ? await store.rowsBetween(Math.min(...seqs), Math.max(...seqs)) : [];
  const hashAt = new Map(rows.map((row) => [row.seq, row.hash]));
  let latest: Checkpoint | null = null;
  const matching: Checkpoint[] = [];
  let firstRewrite: Checkpoint | null = null;
  let lastGoodSeq = 0;
  let furthest: Checkpoint | null = null;
  for (const checkpoint of [...valid].sort((a, b) => a.seq - b.seq || Date.parse(a.at) - Date.parse(b.at))) {
    if (furthest === null || checkpoint.seq > furthest.seq) furthest = checkpoint;
    const hash = hashAt.get(checkpoint.seq);
    if (hash === checkpoint.headHash) {
      if (firstRewrite === null) lastGoodSeq = checkpoint.seq;
      latest = checkpoint;
      matching.push(checkpoint);
    } else if (hash !== undefined) firstRewrite ??= checkpoint;
  }
  if (firstRewrite)
    findings.push({
      kind: 'rewritten',
      seq: firstRewrite.seq,
      message: `rewritten: the row at seq ${firstRewrite.seq} no longer has the hash signed at ${firstRewrite.at} (${firstRewrite.headHash.slice(0, 16)}…); rows after seq ${lastGoodSeq} were changed, removed or inserted and the chain recomputed`,
    });
  const tableEnd = head?.seq ?? 0;
  if (furthest && furthest.seq > tableEnd)
    findings.push({
      kind: 'truncated_tail',
      seq: tableEnd + 1,
      message: `truncated tail: the checkpoint of ${furthest.at} covers seq ${furthest.seq}, but the table ends at seq ${tableEnd}: rows ${tableEnd + 1} to ${furthest.seq} are missing`,
    });
  if (valid.length === 0 && tableEnd > 0)
    findings.push({
      kind: 'unanchored',
      message: `no valid checkpoint: the ${tableEnd} rows are not anchored outside the table (a worker signs one every few minutes while rows are written)`,
    });
  else if (latest && tableEnd > latest.seq && !firstRewrite)
    findings.push({
      kind: 'unanchored',
      seq: latest.seq + 1,
      message: `rows ${latest.seq + 1} to ${tableEnd} are after the latest checkpoint (${latest.at}): only the chain and Temporal's histories vouch for them yet`,
    });
  return { checkpoints: kept.length, validSignatures: valid.length, latest, matching, findings };
}

/** One workflow run's receipts from its history. */
export interface HistoryReceipts {
  workflowId: string;
  runId: string;
  receipts: AuditReceipt[];
  /** false when some audit activity of the run returned no receipts (versions before them): no forged-row check. */
  complete: boolean;
  /**
   * Still running: its newest rows may be committed before their activity's result reaches the
   * history, so a row past its last receipt is a notice until it ends.
   */
  open?: boolean;
}

const stepOf = (id: string) => Number(id.split('/').at(-1));

/** Audit ids are `<workflowId>/<runId>/<n>`. */
function runKey(id: string): string | null {
  const parts = id.split('/');
  return parts.length >= 3 ? parts.slice(0, -1).join('/') : null;
}

/**
 * The table against every run's receipts: a receipt whose row is gone (a truncated tail, a
 * deleted offboarding, missing rows), whose row now has another seq or hash (rewritten), and a
 * row of a run whose history does not list it (forged). Rows of runs with no history (beyond
 * Temporal's retention, or written by something other than a workflow) are counted as a notice.
 */
export async function compareWithHistories(
  store: AuditStore,
  histories: HistoryReceipts[],
  options: { notFromWorkflows?: ReadonlySet<string> } = {},
): Promise<{ findings: Finding[]; runsChecked: number; receiptsChecked: number }> {
  const findings: Finding[] = [];
  const table = new Map<string, { seq: number; hash: string; offboardingId: string }>();
  for await (const row of store.receipts()) table.set(row.id, row);
  const tableEnd = Math.max(0, ...[...table.values()].map((r) => r.seq));
  const runs = new Map(histories.map((h) => [`${h.workflowId}/${h.runId}`, h]));
  let receiptsChecked = 0;

  for (const history of histories) {
    const missing: AuditReceipt[] = [];
    const changed: { receipt: AuditReceipt; now: { seq: number; hash: string } }[] = [];
    for (const receipt of history.receipts) {
      receiptsChecked += 1;
      const row = table.get(receipt.id);
      if (!row) missing.push(receipt);
      else if (row.seq !== receipt.seq || row.hash !== receipt.hash) changed.push({ receipt, now: row });
    }
    if (changed.length > 0) {
      const [{ receipt, now }] = changed as [(typeof changed)[number]];
      findings.push({
        kind: 'rewritten',
        seq: now.seq,
        offboardingId: history.workflowId,
        message: `rewritten: ${changed.length} rows ${history.workflowId} wrote differ from its history; the first, row ${receipt.id}, was seq ${receipt.seq} hash ${receipt.hash.slice(0, 16)}…, the table has seq ${now.seq} hash ${now.hash.slice(0, 16)}…`,
      });
    }
    if (missing.length === 0) continue;
    const seqs = missing.map((r) => r.seq);
    const range = `seq ${Math.min(...seqs)} to ${Math.max(...seqs)}`;
    if (missing.length === history.receipts.length)
      findings.push({
        kind: 'deleted_offboarding',
        offboardingId: history.workflowId,
        seq: Math.min(...seqs),
        message: `deleted offboarding: every one of the ${missing.length} rows ${history.workflowId} (run ${history.runId}) wrote (${range}) is missing from the table`,
      });
    else if (seqs.every((seq) => seq > tableEnd))
      findings.push({
        kind: 'truncated_tail',
        offboardingId: history.workflowId,
        seq: Math.min(...seqs),
        message: `truncated tail: ${missing.length} rows ${history.workflowId} wrote (${range}) lie beyond the table's end (seq ${tableEnd})`,
      });
    else
      findings.push({
        kind: 'missing_rows',
        offboardingId: history.workflowId,
        seq: Math.min(...seqs),
        message: `missing rows: ${missing.length} of the rows ${history.workflowId} wrote (${range}) are not in the table`,
      });
  }

  const withoutHistory = new Map<string, number>();
  for (const [id, row] of table) {
    if (options.notFromWorkflows?.has(row.offboardingId)) continue;
    const key = runKey(id);
    const history = key ? runs.get(key) : undefined;
    if (!history || !history.complete) {
      withoutHistory.set(row.offboardingId, (withoutHistory.get(row.offboardingId) ?? 0) + 1);
      continue;
    }
    if (history.receipts.some((r) => r.id === id)) continue;
    if (history.open && stepOf(id) > Math.max(0, ...history.receipts.map((r) => stepOf(r.id))))
      findings.push({
        kind: 'receipt_pending',
        seq: row.seq,
        offboardingId: row.offboardingId,
        message: `seq ${row.seq} (${id}) is newer than the last receipt of ${history.workflowId}, which is still running: verify again once it has moved on`,
      });
    else
      findings.push({
        kind: 'forged_row',
        seq: row.seq,
        offboardingId: row.offboardingId,
        message: `forged row: seq ${row.seq} (${id}) claims to be ${history.workflowId}'s, but its history records no such row`,
      });
  }
  if (withoutHistory.size > 0)
    findings.push({
      kind: 'no_history',
      message: `${[...withoutHistory.values()].reduce((a, b) => a + b, 0)} rows of ${withoutHistory.size} offboarding(s) have no Temporal history, or one from before receipts were kept, to compare with (past retention, or older versions): ${[...withoutHistory.keys()].slice(0, 10).join(', ')}${withoutHistory.size > 10 ? ', …' : ''}`,
    });
  return { findings, runsChecked: histories.length, receiptsChecked };
}

/** The chain's own result as a finding. */
export function chainFindings(chain: VerifyResult): Finding[] {
  return chain.ok
    ? []
    : [
        {
          kind: 'chain_broken',
          seq: chain.firstBroken!.seq,
          message: `chain broken at seq ${chain.firstBroken!.seq} (${chain.firstBroken!.id}): ${chain.firstBroken!.problem}`,
        },
      ];
}
