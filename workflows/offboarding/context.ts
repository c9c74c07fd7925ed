/** The concerns of one offboarding, passed together to the code that needs several of them. */
import type { Notifier } from './notifications.js';
import type { OperatorTasks } from './operator-tasks.js';
import type { Recorder } from './recorder.js';
import type { StallWatchdog } from './stall-watchdog.js';
import type { OffboardingState } from './state.js';

export interface Offboarding {
  state: OffboardingState;
  recorder: Recorder;
  notifier: Notifier;
  tasks: OperatorTasks;
  stalls: StallWatchdog;
}
