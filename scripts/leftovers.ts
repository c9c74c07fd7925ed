/**
 * Pid files for the processes `npm start` runs, so that what a crashed run left behind is found at
 * the next start: stopped when it is provably ours (the pid file's pid is alive and started at the
 * time recorded, so a pid reused by an unrelated process is never touched), and otherwise named
 * when it holds a port we need.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface PidFile {
  pid: number;
  /** /proc/<pid>/stat field 22: when the process started, in clock ticks since boot. */
  startTime: string;
  what: string;
  stopSignal: NodeJS.Signals;
}

/** When the process started (ticks since boot), or undefined when it is not running. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces; count from after it.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ').slice(0, 160);
  } catch {
    return '';
  }
}

export function recordProcess(runDir: string, name: string, what: string, pid: number, stopSignal: NodeJS.Signals) {
  const startTime = processStartTime(pid);
  if (startTime === undefined) return;
  mkdirSync(runDir, { recursive: true });
  const record: PidFile = { pid, startTime, what, stopSignal };
  writeFileSync(join(runDir, `${name}.pid`), JSON.stringify(record));
}

export function forgetProcess(runDir: string, name: string) {
  rmSync(join(runDir, `${name}.pid`), { force: true });
}

function readRecords(runDir: string): { name: string; record: PidFile; alive: boolean }[] {
  if (!existsSync(runDir)) return [];
  return readdirSync(runDir)
    .filter((file) => file.endsWith('.pid'))
    .flatMap((file) => {
      try {
        const record = JSON.parse(readFileSync(join(runDir, file), 'utf8')) as PidFile;
        return [{ name: file.slice(0, -4), record, alive: processStartTime(record.pid) === record.startTime }];
      } catch {
        return []; // a pid file cut short by a crash proves nothing
      }
    });
}

/** The supervisor of an earlier `npm start` over this data directory, if it still runs. */
export function runningSupervisor(runDir: string): PidFile | undefined {
  return readRecords(runDir).find(({ name, alive }) => name === 'npm-start' && alive)?.record;
}

const alive = (pid: number, startTime: string) => processStartTime(pid) === startTime;

/**
 * Stops every process a crashed `npm start` left (its own signal first, SIGKILL after
 * `graceMs`), removes the stale pid files, and returns a line per process stopped.
 */
export async function stopLeftovers(runDir: string, graceMs = 30_000): Promise<string[]> {
  const stopped: string[] = [];
  // Last started, first stopped, as a clean stop would: the worker before the servers it uses.
  const records = readRecords(runDir).sort((a, b) => Number(b.record.startTime) - Number(a.record.startTime));
  for (const { name, record, alive: running } of records) {
    if (running && name !== 'npm-start') {
      process.kill(record.pid, record.stopSignal);
      const deadline = Date.now() + graceMs;
      while (alive(record.pid, record.startTime) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (alive(record.pid, record.startTime)) process.kill(record.pid, 'SIGKILL');
      while (alive(record.pid, record.startTime)) await new Promise((r) => setTimeout(r, 50));
      stopped.push(`${record.what}, pid ${record.pid},`);
    }
    forgetProcess(runDir, name);
  }
  return stopped;
}

/** Who listens on 127.0.0.1:port, as "pid 123 (command line)", when `ss` can tell. */
export function whoListens(port: number): string | undefined {
  const ss = spawnSync('ss', ['-H', '-ltnp', `sport = :${port}`], { encoding: 'utf8' });
  const pid = /pid=(\d+)/.exec(ss.stdout ?? '')?.[1];
  if (!pid) return undefined;
  const command = commandLine(Number(pid));
  return `pid ${pid}${command ? ` (${command})` : ''}`;
}
