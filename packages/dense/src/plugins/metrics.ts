/**
 * The dense tasks' metrics: `metric/map` (COCO box mAP of the decoded detections) and `metric/miou`
 * (mIoU and pixel accuracy). One evaluator per role, fed on `evalBatch` with the role's heads and the
 * batch's targets, turned into numbers on `evalEnd` (recorded in metrics.json and the history), then
 * dropped for the next evaluation. A detection or segmentation run always has its task's metric.
 */
import { definePlugin, KdError, type EvalBatch, type PluginDeps } from '@tfkd/kd-core';
import type { Tensor } from '@tensorflow/tfjs-core';
import { z } from 'zod';
import { decodeDetections } from '../decode';
import { detectorHeads } from '../detector';
import { makeLayout, type DetectorLayout } from '../layout';
import { DetectionEvaluator } from '../map';
import { SegmentationEvaluator, segmentationPredictions } from '../seg-metrics';
import { checkSegmenter, detectorLayoutOf } from './heads';

/** The layout of evaluated heads (a loaded model's included), from their shapes. */
export function layoutOfHeads(heads: Record<string, Tensor>, inputShape: readonly number[], name: string): DetectorLayout {
  const [cls, box] = [heads.cls_p3, heads.box_p3];
  if (!cls || !box) {
    throw new KdError('KD_SHAPE_MISMATCH', `'${name}' evaluates a detector's heads (cls_p3, box_p3, cls_p4, box_p4); the model has ${Object.keys(heads).join(', ')}`, {
      fix: 'evaluate a detector zoo model (detector, detector-student, detector-teacher)',
    });
  }
  return makeLayout(inputShape as [number, number, number], cls.shape[3] as number, (box.shape[3] as number) / 4 - 1);
}

/** Check every role's model at creation (plan time), so a non-detector fails before training. */
function checkRoles(deps: PluginDeps, check: (deps: PluginDeps, role: string) => unknown): void {
  for (const r of deps.roles) check(deps, r.name);
}

const decodeOptions = {
  scoreThreshold: z.number().min(0).max(1).default(0.05).describe('candidates need a class probability above this (mmdet test_cfg score_thr 0.05)'),
  iouThreshold: z.number().gt(0).max(1).default(0.6).describe('class-wise NMS IoU threshold (GFL/FCOS 0.6)'),
  maxPerImage: z.number().int().positive().default(100).describe('detections kept per image (and COCO maxDets)'),
};

export const mapMetric = definePlugin({
  id: 'metric/map',
  kind: 'metric',
  tasks: ['detection'],
  describe: 'COCO box mAP with the rules of pycocotools (area all): map (AP@[.5:.95]), map50, map75, mar (AR@maxDets) of the decoded detections',
  options: z.object(decodeOptions).strict(),
  create(o, deps) {
    checkRoles(deps, detectorLayoutOf);
    const evals = new Map<string, DetectionEvaluator>();
    return {
      name: deps.name,
      register(bus) {
        bus.on('evalBatch', (e: EvalBatch) => {
          if (!e.heads || !e.objects) throw new KdError('KD_TASK_MISMATCH', `'${deps.name}' evaluates detections, and the evaluation batch has no heads or objects`, { fix: 'set `task: detection`' });
          const layout = layoutOfHeads(e.heads, deps.inputShape, deps.name);
          const dets = decodeDetections(detectorHeads(e.heads, layout), layout, o);
          let ev = evals.get(e.role);
          if (!ev) evals.set(e.role, (ev = new DetectionEvaluator({ numClasses: layout.numClasses, maxDets: o.maxPerImage })));
          e.objects.forEach((gt, i) => (ev as DetectionEvaluator).add(gt, dets[i]));
        });
        bus.on('evalEnd', (report) => {
          for (const [role, ev] of evals) {
            const r = ev.result();
            report.set(role, { map: r.map, map50: r.map50, map75: r.map75, mar: r.mar });
          }
          evals.clear();
        });
      },
      dispose: () => evals.clear(),
    };
  },
});

export const miouMetric = definePlugin({
  id: 'metric/miou',
  kind: 'metric',
  tasks: ['segmentation'],
  describe: 'semantic segmentation: miou (mean IoU over the classes present in prediction or ground truth, background included) and pixelAccuracy, from a confusion matrix over the test set',
  options: z.object({ ignoreIndex: z.number().int().min(0).optional().describe('a label to skip (none in fashion-scenes)') }).strict(),
  create(o, deps) {
    checkRoles(deps, checkSegmenter);
    const evals = new Map<string, SegmentationEvaluator>();
    return {
      name: deps.name,
      register(bus) {
        bus.on('evalBatch', (e: EvalBatch) => {
          if (!e.masks) throw new KdError('KD_TASK_MISMATCH', `'${deps.name}' evaluates segmentations, and the evaluation batch has no masks`, { fix: 'set `task: segmentation`' });
          const k = e.logits.shape[e.logits.shape.length - 1] as number;
          let ev = evals.get(e.role);
          if (!ev) evals.set(e.role, (ev = new SegmentationEvaluator(k, o.ignoreIndex)));
          ev.add(segmentationPredictions(e.logits), e.masks.dataSync());
        });
        bus.on('evalEnd', (report) => {
          for (const [role, ev] of evals) {
            const r = ev.result();
            report.set(role, { miou: r.miou, pixelAccuracy: r.pixelAccuracy });
          }
          evals.clear();
        });
      },
      dispose: () => evals.clear(),
    };
  },
});

export const DENSE_METRICS = [mapMetric, miouMetric];
