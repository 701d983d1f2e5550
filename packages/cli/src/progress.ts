import { SingleBar, Presets } from 'cli-progress';
import { filter } from 'rxjs';
import type { LifecycleBus, ObservedEvent } from '@tfkd/kd-core';

function fmt(metrics: Record<string, Record<string, number>>): string {
  return Object.entries(metrics)
    .map(([role, m]) =>
      m.accuracy === undefined && (m.map !== undefined || m.miou !== undefined)
        ? `${role} ${m.map !== undefined ? `mAP ${(m.map * 100).toFixed(2)}` : `mIoU ${(m.miou * 100).toFixed(2)}`}%` // a dense task's metric
        : `${role} acc ${(m.accuracy * 100).toFixed(2)}%`,
    )
    .join(', ');
}

/**
 * Progress on the terminal: a bar per epoch on a TTY, one plain line per epoch otherwise. It only
 * observes `bus.events$` (numbers); it never touches tensors.
 */
export function attachProgress(bus: LifecycleBus, phase: string, out: NodeJS.WriteStream = process.stderr): void {
  const tty = Boolean(out.isTTY) && !process.env.CI;
  let bar: SingleBar | null = null;
  let batches = 0;
  let epochs = 0;
  // Runs with `stages:` have several phases (each stage, then the main one): sizes and labels per phase.
  const sizes = new Map<string, { batches: number; epochs: number }>();
  const enter = (name: string | undefined) => {
    const size = name !== undefined ? sizes.get(name) : undefined;
    if (size) ({ batches, epochs } = size);
  };
  const startBar = (label: string, epoch: number, of: number, at: number): SingleBar => {
    const b = new SingleBar({ format: `[${label}] epoch ${epoch}/${of} {bar} {value}/{total} loss {loss}`, hideCursor: true, clearOnComplete: true, stream: out }, Presets.shades_classic);
    b.start(batches, at, { loss: '-' });
    return b;
  };
  bus.events$.pipe(filter((e: ObservedEvent) => e.hook !== 'evalEnd')).subscribe({
    next(e) {
      switch (e.hook) {
        case 'runStart':
          batches = e.payload.phases[0]?.batchesPerEpoch ?? 0;
          epochs = e.payload.phases[0]?.epochs ?? 0;
          for (const p of e.payload.phases) sizes.set(p.name, { batches: p.batchesPerEpoch, epochs: p.epochs });
          enter(e.payload.resumed?.phase);
          if (phase === 'distill' || phase === 'teacher') {
            out.write(`[${phase}] ${e.payload.dataset.name} (${e.payload.dataset.source}, ${e.payload.dataset.train} train / ${e.payload.dataset.test} test) on ${e.payload.backend}\n`);
            if (e.payload.dataset.note && phase === 'distill') out.write(`  note: ${e.payload.dataset.note}\n`);
            if (e.payload.phases.length > 1) out.write(`  phases: ${e.payload.phases.map((p) => `${p.name} (${p.epochs} epoch${p.epochs === 1 ? '' : 's'})`).join(' → ')}\n`);
          }
          break;
        case 'epochStart':
          enter(e.payload.phase);
          if (tty) bar = startBar(e.payload.phase, e.payload.epoch, e.payload.epochs, 0);
          break;
        case 'batchEnd':
          // A run resumed inside an epoch has no epochStart for it: start the bar where it stands.
          if (tty && !bar) bar = startBar(e.payload.phase, e.payload.epoch, epochs, e.payload.batchIndex);
          bar?.update(e.payload.batchIndex + 1, { loss: e.payload.loss.toFixed(4) });
          break;
        case 'epochEnd': {
          bar?.stop();
          bar = null;
          const p = e.payload;
          const acc = Object.keys(p.eval).length ? `, ${fmt(p.eval)}` : '';
          out.write(`[${p.phase}] epoch ${p.epoch}/${p.epochs} loss ${p.train.loss.toFixed(4)}${acc} (${p.seconds.toFixed(1)}s)\n`);
          break;
        }
        default:
          break;
      }
    },
  });
}
