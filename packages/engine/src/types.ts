import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { DataSplits, EpochSummary, LedgerSnapshot, LifecycleBus, RoleInfo, RunSpec, RunStartInfo, Storage } from '@tfkd/kd-core';
import type { SelectedBackend } from './backend';
import type { RunPosition, TrainingState } from './checkpoint';
import type { Registry } from './registry';
import type { ProvidedTeacher } from './setup';
import type { TeacherForwardOptions } from './teacher-source';

export type { FastTeacher, TeacherForwardOptions, TeacherSource, TeacherSourceFactory, TeacherSourceRequest } from './teacher-source';

export interface EngineOptions {
  registry: Registry;
  /** Folder that relative paths in the spec (`load:`, data folders, `packages:`) are resolved against. */
  specDir?: string;
  /** Files: the teacher cache, generations' models (default: the registry's STORAGE binding — `nodeModule` on Node — else in memory). */
  storage?: Storage;
  /** Teacher cache folder, used by the plan (`planRun`/`executePlan`/`runSpec`); null: no cache. */
  cacheDir?: string | null;
  log?: (line: string) => void;
  /** Warnings (a teacher cache that cannot be written, …): shown even when `log` is quiet. Default: `log`. */
  warn?: (line: string) => void;
  /** Called with the bus of every engine a plan runs (teacher training, generations, the main run). */
  observe?: (bus: LifecycleBus, phase: string) => void;
  /** Already loaded data / selected backend (the plan loads them once for all its runs). */
  data?: DataSplits & { note?: string };
  backend?: SelectedBackend;
  phase?: string;
  /**
   * Models handed over in code (`distill()`), by role: used as they are — a student is trained in
   * place, a teacher frozen (its `trainable` set to false) — and never disposed by the engine.
   * A `tf.GraphModel` teacher goes through `graphTeacher()`.
   */
  models?: ReadonlyMap<string, LayersModel>;
  /** Teachers trained from labels, as the plan's executor made or loaded them (by role). */
  teachers?: ReadonlyMap<string, ProvidedTeacher>;
  /**
   * Check, do not train: `prepare()` builds teachers that would be trained untrained, creates the
   * plugins on copies of their generators, and `run()` is refused. The plan validates every run so.
   */
  dryRun?: boolean;
  /**
   * Continue from this state (`readCheckpoint`): the spec, data and teachers must be the ones it was
   * written with. Restored right after `runStart`; training continues at `state.next`.
   */
  resume?: TrainingState;
  /**
   * Called with the training state at the end of every epoch (after `epochEnd`) and when the run
   * stops on `shouldStop`; the engine awaits it. The CLI writes it with `writeCheckpoint`.
   */
  onCheckpoint?: (state: TrainingState) => void | Promise<void>;
  /**
   * Where a teacher trained from labels keeps its training state between attempts, by its cache key:
   * given, a teacher that is to be cached (a writable `cacheDir`) writes a checkpoint at every epoch
   * end (and on `shouldStop`), a later attempt resumes from it — bit for bit as an uninterrupted
   * training — and it is cleared once the teacher is trained. One that cannot be read or was written
   * for another spec is ignored with a warning; a failed write is a warning. On Node:
   * `teacherCheckpointFiles(cacheDir)` from `@tfkd/engine/node`.
   */
  teacherCheckpoints?: TeacherCheckpoints;
  /**
   * Checked before every step: once it returns true the run stops (status `interrupted`), hands the
   * state at that step to `onCheckpoint`, and fires `runEnd`. Teacher training stops too (KD_INTERRUPTED).
   */
  shouldStop?: () => boolean;
  /**
   * How frozen teachers are forwarded during training (off by default; results do not depend on
   * `worker`, bit for bit). `worker`: a factory of teacher sources — `teacherWorkerSource` from
   * `@tfkd/engine/node` (a worker thread) — that compute batch i+1's teacher outputs while the student
   * steps batch i. `foldBatchNorm`: fold batch norms into the preceding convolutions for the frozen
   * forward (`foldBatchNorm` of `@tfkd/models`): equal to float32 precision, not bit for bit.
   * See teacher-forward.ts.
   */
  teacherForward?: TeacherForwardOptions;
}

/** A store of teacher training checkpoints by teacher cache key (`EngineOptions.teacherCheckpoints`). */
export interface TeacherCheckpoints {
  /** The checkpoint of teacher `key`, or null when there is none. */
  read(key: string): TrainingState | null | Promise<TrainingState | null>;
  write(key: string, state: TrainingState): void | Promise<void>;
  /** Forget teacher `key`'s checkpoint (it is trained); nothing to clear is no error. */
  clear(key: string): void | Promise<void>;
}

export interface RunResult {
  /** `interrupted`: stopped on `shouldStop` before the last step (`stoppedAt` is the next step to run). */
  status: 'completed' | 'interrupted';
  spec: RunSpec;
  backend: SelectedBackend;
  dataset: RunStartInfo['dataset'];
  roles: RoleInfo[];
  /** Final evaluation: role → metric → value (teachers evaluated once, before training). */
  eval: Record<string, Record<string, number>>;
  /**
   * The test-set logits ([n·K] row-major) of each role's evaluation above, as the engine computed
   * them: post-run analysis (calibration, reliability diagrams) reads these instead of forwarding the
   * test set again. Absent for a role whose evaluation came from a checkpoint.
   */
  testLogits: Record<string, Float32Array>;
  history: EpochSummary[];
  ledger: LedgerSnapshot;
  seconds: number;
  /** Every role's model by name, and every player's. */
  models: Map<string, LayersModel>;
  /** The data the run used (plain arrays), for post-run analysis such as calibration. */
  data: DataSplits;
  teachers: Record<string, { cached: boolean; key: string | null; dir: string | null }>;
  /** Where an interrupted run stopped: the next step to run. */
  stoppedAt?: RunPosition & { step: number; phase?: string };
  /** Where this process took the run up from its checkpoint. */
  resumedFrom?: RunPosition & { step: number; phase?: string };
  /** How many times the run was resumed (0 for a run in one go). */
  resumes: number;
  /** The players' names (spec `players:`; their trained models are in `models`); absent without players. */
  players?: string[];
}
