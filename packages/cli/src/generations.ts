import * as path from 'path';
import { KdError, checkGenerationSpec, generationPlan, type EngineOptions, type GenerationPlan, type RunSpec } from '@tfkd/kd-core';

/**
 * The generations a spec asks for (a plugin with `generations`, e.g. `self/born-again`), or null for
 * an ordinary one-engine run; a spec the driver cannot run (its own teacher, `students:`) fails here,
 * before `prepare` would train a teacher. Multi-generation runs do not take `--resume`: every finished
 * generation is cached, so running the spec again continues with the first unfinished one.
 */
export async function plannedGenerations(spec: RunSpec, opts: EngineOptions, resume?: string): Promise<GenerationPlan | null> {
  const plan = await generationPlan(spec, opts.registry, opts.specDir ?? process.cwd());
  if (plan) checkGenerationSpec(spec, plan);
  if (plan && resume) {
    throw new KdError('KD_SPEC_INVALID', `'${plan.id}' trains ${plan.count} generations, each cached when it finishes; --resume continues one engine run only`, {
      path: `plugins[${plan.index}]`,
      fix: `run the spec again without --resume${opts.cacheDir ? ` (generations already in ${path.join(opts.cacheDir, 'teachers')} are reused)` : ''}`,
    });
  }
  return plan;
}
