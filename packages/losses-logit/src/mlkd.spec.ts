import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { validate, type LossTerm, type StepContext } from '@tfkd/kd-core';
import { fakePluginDeps, finiteDifferenceCheck } from '@tfkd/kd-core/testing';
import { TWO_ROLES } from './__fixtures__/harness';
import { expectClose, kl, mean, softmax, transpose, type Matrix } from './__fixtures__/reference';
import { batchCorrelationLoss, classCorrelationLoss, fractionAtOrBelowPercentile, mlkd, mlkdLoss, mlkdMaskFractions, mlkdParts, mlkdSchema, type MlkdLogits, type MlkdOptions } from './mlkd';

// loss/mlkd, the pure function and the plugin on a stub step (real runs: mlkd-run.spec.ts).

beforeAll(async () => {
  await tf.setBackend('cpu');
});

// Four samples, three classes, two views: the student's and the teacher's logits on the weak and on
// the strong view of each image.
const SW = [
  [1.0, 2.0, 0.5],
  [0.2, -1.0, 1.5],
  [-0.3, 0.8, 0.1],
  [1.2, 0.4, -0.6],
];
const SS = [
  [0.6, 1.5, 0.9],
  [0.5, -0.4, 1.0],
  [0.0, 0.3, -0.2],
  [0.9, 1.1, -1.0],
];
const TW = [
  [2.0, 1.0, 0.0],
  [0.0, 0.5, 2.5],
  [0.3, 1.8, -0.4],
  [1.0, 0.9, -0.5],
];
const TS = [
  [1.5, 1.2, 0.1],
  [0.2, 0.4, 1.9],
  [0.1, 1.2, 0.0],
  [0.8, 1.0, -0.2],
];
const Y = [0, 2, 1, 0];

/**
 * Pasted from the reference code re-run in torch float64: kd_loss, cc_loss, bc_loss and the body of
 * KD_ours.forward_train were exec'd verbatim from Jin-Ying/Multi-Level-Logit-Distillation @ 5ee473f,
 * mdistiller/distillers/KD_ours.py, with the four model calls replaced by the logits above (torch
 * default dtype float64); `total` is AugTrainer's sum([l.mean() for l in losses_dict.values()]) and the
 * gradients are torch.autograd.grad(total, [logits_student_weak, logits_student_strong]). The
 * losses_dict values are the weighted terms (ce·CE_WEIGHT, kd/cc/bc·KD_WEIGHT).
 */
const TORCH = {
  // mdistiller CFG defaults (the CIFAR-100 "ours" configs set no KD section): T = 4, CE 0.1, KD 0.9
  cifar: {
    loss_ce: 0.16887642681828494,
    loss_kd: 1.2044324649619096,
    loss_cc: 0.009354941567149753,
    loss_bc: 0.0019443796184456714,
    total: 1.38460821296579,
    mask: 0.5,
    classMask: 0.6666666666666666,
    gradWeak: [
      [-0.44337070320153155, 0.33384424779179206, 0.10952645540973918],
      [0.27451210772492707, -0.17726350286291914, -0.09724860486200809],
      [-0.03692211007114566, -0.25173577793055973, 0.28865788800170467],
      [0.1174606651503886, -0.13592376862464975, 0.018463103474261406],
    ],
    gradStrong: [
      [-0.23451888654685096, 0.07704869662416929, 0.15747018992268166],
      [0.1747591046327265, -0.053200732244519454, -0.12155837238820721],
      [0.07914738462311346, -0.133607608557255, 0.05446022393414119],
      [0.04099633179394836, 0.0712760779738041, -0.11227240976775213],
    ],
  },
  // configs/imagenet/r34_r18/kd_ours.yaml: T = 1, CE 0.5, KD 0.5 (temperatures [1, 3, 5, 2, 6])
  imagenet: {
    loss_ce: 0.8443821340914246,
    loss_kd: 0.6474903029455092,
    loss_cc: 0.014502209755039588,
    loss_bc: 0.010849315723634864,
    total: 1.5172239625156083,
    gradWeak: [
      [-0.3402237725882803, 0.26007111155803736, 0.08015266103024277],
      [0.17208690790061512, -0.079965917413256, -0.09212099048735911],
      [-0.0009372592001932536, -0.19408386357466562, 0.19502112277485872],
      [0.0172084731136552, -0.045844785614433725, 0.02863631250077867],
    ],
    gradStrong: [
      [-0.21540446914315564, 0.10514930435544335, 0.1102551647877123],
      [0.12720387304728806, -0.007374386468898719, -0.11982948657838947],
      [0.07984942521642172, -0.13919954822103703, 0.05935012300461516],
      [-0.04739803121740642, 0.09136321237441608, -0.0439651811570095],
    ],
  },
  // the cifar run with TW's rows 0 and 2 made equal ([2, 1, 0]): two confidences tie at the median
  ties: { mask: 0.75, classMask: 0.6666666666666666, loss_kd: 1.959362966504235, loss_cc: 0.03604300711321253, loss_bc: 0.003345524377566346, total: 2.1676279248132984 },
};
const TW_TIES = [TW[0], TW[1], TW[0], TW[3]];

const DEFAULTS = mlkdSchema.parse({});
const IMAGENET = mlkdSchema.parse({ temperatures: [1, 3, 5, 2, 6], strongTemperatures: [1, 3, 5], ceWeight: 0.5, kdWeight: 0.5 });

function logits(sw: Matrix = SW, ss: Matrix = SS, tw: Matrix = TW, ts: Matrix = TS): MlkdLogits {
  return { studentWeak: tf.tensor2d(sw), studentStrong: tf.tensor2d(ss), teacherWeak: tf.tensor2d(tw), teacherStrong: tf.tensor2d(ts) };
}

/** The weighted parts and the total, as numbers (the reference's losses_dict). */
function weighted(o: MlkdOptions, l: () => MlkdLogits = () => logits(), y: number[] = Y) {
  return tf.tidy(() => {
    const p = mlkdParts(l(), tf.tensor1d(y, 'int32'), o);
    const n = (t: tf.Tensor) => t.dataSync()[0];
    return {
      loss_ce: o.ceWeight * n(p.ce),
      loss_kd: o.kdWeight * n(p.kd),
      loss_cc: o.kdWeight * n(p.cc),
      loss_bc: o.kdWeight * n(p.bc),
      total: n(mlkd(l(), tf.tensor1d(y, 'int32'), o)),
      mask: n(p.sampleMask),
      classMask: n(p.classMask),
    };
  });
}

/** The gradient of the total w.r.t. the student's weak and strong logits. */
function grads(o: MlkdOptions): { weak: number[]; strong: number[] } {
  return tf.tidy(() => {
    const [tw, ts, y] = [tf.tensor2d(TW), tf.tensor2d(TS), tf.tensor1d(Y, 'int32')];
    const g = tf.grads((sw: tf.Tensor, ss: tf.Tensor) => mlkd({ studentWeak: sw, studentStrong: ss, teacherWeak: tw, teacherStrong: ts }, y, o))([tf.tensor2d(SW), tf.tensor2d(SS)]);
    return { weak: Array.from(g[0].dataSync()), strong: Array.from(g[1].dataSync()) };
  });
}

describe('mlkd (pure function) against the reference re-run in torch float64', () => {
  it('CIFAR-100 defaults (T list [4, 3, 5, 2, 6], CE 0.1, KD 0.9): loss_ce, loss_kd, loss_cc, loss_bc, total', () => {
    // teacher weak-view confidences max softmax(TW) = [0.665241, 0.821409, 0.749663, 0.469932], median 0.707452:
    // samples 0 and 3 are kept → sample mask 0.5. Class sums [1.369871, 1.530769, 1.099361], median
    // 1.369871: classes 0 and 2 → class mask 2/3.
    const v = weighted(DEFAULTS);
    for (const k of ['loss_ce', 'loss_kd', 'loss_cc', 'loss_bc', 'total', 'mask', 'classMask'] as const) expectClose(v[k], TORCH.cifar[k]);
  });

  it('ImageNet config (T = 1: temperatures [1, 3, 5, 2, 6], strong [1, 3, 5]; CE 0.5, KD 0.5)', () => {
    const v = weighted(IMAGENET);
    for (const k of ['loss_ce', 'loss_kd', 'loss_cc', 'loss_bc', 'total'] as const) expectClose(v[k], TORCH.imagenet[k]);
  });

  it('confidence ties at the percentile: every tied sample counts (mask 0.75 = 3 of 4 at or below the median)', () => {
    const v = weighted(DEFAULTS, () => logits(SW, SS, TW_TIES, TS));
    for (const k of ['loss_kd', 'loss_cc', 'loss_bc', 'total', 'mask', 'classMask'] as const) expectClose(v[k], TORCH.ties[k]);
  });

  it('gradients w.r.t. the student’s weak and strong logits equal torch’s autograd', () => {
    for (const [o, want] of [
      [DEFAULTS, TORCH.cifar],
      [IMAGENET, TORCH.imagenet],
    ] as const) {
      const g = grads(o);
      want.gradWeak.flat().forEach((e, i) => expectClose(g.weak[i], e));
      want.gradStrong.flat().forEach((e, i) => expectClose(g.strong[i], e));
    }
  });

  it('ccScale and bcScale (not in the reference) scale only the class and batch terms: total = loss_ce + loss_kd + 0.25·loss_cc + 3·loss_bc', () => {
    const scaled = { ...DEFAULTS, ccScale: 0.25, bcScale: 3 };
    const c = TORCH.cifar;
    expectClose(weighted(scaled).total, c.loss_ce + c.loss_kd + 0.25 * c.loss_cc + 3 * c.loss_bc);
    const [sw, ss, tw, ts, y] = [tf.tensor2d(SW), tf.tensor2d(SS), tf.tensor2d(TW), tf.tensor2d(TS), tf.tensor1d(Y, 'int32')];
    const fd = finiteDifferenceCheck((x) => mlkd({ studentWeak: x, studentStrong: ss, teacherWeak: tw, teacherStrong: ts }, y, scaled), SW.flat(), [4, 3]);
    expect(fd.maxRelError).toBeLessThan(1e-2);
    tf.dispose([sw, ss, tw, ts, y]);
  });

  it('passes finite-difference gradient checks w.r.t. the student’s logits of both views', () => {
    const [sw, ss, tw, ts, y] = [tf.tensor2d(SW), tf.tensor2d(SS), tf.tensor2d(TW), tf.tensor2d(TS), tf.tensor1d(Y, 'int32')];
    for (const o of [DEFAULTS, IMAGENET]) {
      const weak = finiteDifferenceCheck((x) => mlkd({ studentWeak: x, studentStrong: ss, teacherWeak: tw, teacherStrong: ts }, y, o), SW.flat(), [4, 3]);
      const strong = finiteDifferenceCheck((x) => mlkd({ studentWeak: sw, studentStrong: x, teacherWeak: tw, teacherStrong: ts }, y, o), SS.flat(), [4, 3]);
      expect(weak.maxRelError).toBeLessThan(1e-2);
      expect(strong.maxRelError).toBeLessThan(1e-2);
    }
    tf.dispose([sw, ss, tw, ts, y]);
  });
});

describe('the parts, by their definitions in doubles', () => {
  // Independent of torch and tfjs: plain doubles with the fixtures' softmax / kl.
  const probs = (z: Matrix, t: number) => z.map((r) => softmax(r, t));
  const gram = (a: Matrix, b: Matrix) => a.map((ra) => b.map((rb) => ra.reduce((s, v, k) => s + v * rb[k], 0)));
  const sq = (a: Matrix, b: Matrix) => a.reduce((s, r, i) => s + r.reduce((u, v, j) => u + (v - b[i][j]) ** 2, 0), 0);
  const klT = (zs: Matrix, zt: Matrix, t: number) => t * t * mean(zs.map((r, b) => kl(softmax(zt[b], t), softmax(r, t))));

  it('class correlation Σ(G_t − G_s)²/K with G = pᵀp [K, K]; batch correlation Σ(M_t − M_s)²/B with M = ppᵀ [B, B]; no T²', () => {
    for (const t of [1, 4]) {
      const [ps, pt] = [probs(SW, t), probs(TW, t)];
      const cc = sq(gram(transpose(pt), transpose(pt)), gram(transpose(ps), transpose(ps))) / 3;
      const bc = sq(gram(pt, pt), gram(ps, ps)) / 4;
      const [ccV, bcV] = tf.tidy(() => [classCorrelationLoss(tf.tensor2d(SW), tf.tensor2d(TW), t).dataSync()[0], batchCorrelationLoss(tf.tensor2d(SW), tf.tensor2d(TW), t).dataSync()[0]]);
      expectClose(ccV, cc);
      expectClose(bcV, bc);
    }
  });

  it('kd = Σ_T m·KL_T(weak) + Σ_{T ∈ [4, 3, 5]} KL_T(strong) + Σ_{T ∈ [2, 6]} KL_T(weak) — the reference’s T = 2, 6 “strong” terms read the weak logits', () => {
    const m = 0.5;
    const want =
      m * [4, 3, 5, 2, 6].reduce((s, t) => s + klT(SW, TW, t), 0) + [4, 3, 5].reduce((s, t) => s + klT(SS, TS, t), 0) + [2, 6].reduce((s, t) => s + klT(SW, TW, t), 0);
    const kd = tf.tidy(() => mlkdParts(logits(), tf.tensor1d(Y, 'int32'), DEFAULTS).kd.dataSync()[0]);
    expectClose(kd, want);
    expectClose(0.9 * want, TORCH.cifar.loss_kd);
    // the evident intent instead — strong views at every temperature, no weak repeat — is other options
    const intent = [4, 3, 5, 2, 6].reduce((s, t) => s + m * klT(SW, TW, t) + klT(SS, TS, t), 0);
    const o = mlkdSchema.parse({ strongTemperatures: [4, 3, 5, 2, 6], unmaskedWeakTemperatures: [] });
    expectClose(tf.tidy(() => mlkdParts(logits(), tf.tensor1d(Y, 'int32'), o).kd.dataSync()[0]), intent);
  });

  it('is zero but for CE when the student matches the teacher on both views; CE is CE(weak) + CE(strong)', () => {
    const v = weighted(DEFAULTS, () => logits(TW, TS, TW, TS));
    expectClose(v.loss_kd, 0);
    expectClose(v.loss_cc, 0);
    expectClose(v.loss_bc, 0);
    const ce = (z: Matrix) => mean(z.map((r, b) => -Math.log(softmax(r)[Y[b]])));
    expectClose(v.loss_ce, 0.1 * (ce(TW) + ce(TS)));
  });

  it('soft targets [B, K] (mixup before the views) go to both CE terms', () => {
    const soft = [
      [0.7, 0.3, 0],
      [0, 0.2, 0.8],
      [0, 1, 0],
      [0.5, 0, 0.5],
    ];
    const ce = tf.tidy(() => mlkdParts(logits(), tf.tensor2d(soft), DEFAULTS).ce.dataSync()[0]);
    const h = (z: Matrix) => mean(z.map((r, b) => -soft[b].reduce((s, q, k) => s + q * Math.log(softmax(r)[k]), 0)));
    expectClose(ce, h(SW) + h(SS));
  });
});

describe('confidence masks', () => {
  // numpy 1.24, float32 arrays: [v, q, np.mean(v <= np.percentile(v, q))]
  const NUMPY: [number[], number, number][] = [
    [[0.3, 0.1, 0.4, 0.2], 50, 0.5],
    [[0.2, 0.5, 0.2, 0.9, 0.5], 50, 0.8],
    [[0.6, 0.1, 0.35, 0.8, 0.2, 0.5], 30, 0.3333333333333333],
    [[0.6, 0.1, 0.35, 0.8, 0.2], 75, 0.8],
    [[0.7], 50, 1.0],
    [[0.6, 0.1, 0.35, 0.8, 0.2, 0.5], 0, 0.16666666666666666],
    [[0.6, 0.1, 0.35, 0.8, 0.2, 0.5], 100, 1.0],
    [[0.4, 0.4, 0.4, 0.4], 50, 1.0],
    [[0.9, 0.1, 0.1, 0.5, 0.3, 0.3, 0.7], 40, 0.5714285714285714],
  ];

  it.each(NUMPY)('fraction of %j at or below its %dth percentile = numpy’s %f', (v, q, want) => {
    expectClose(tf.tidy(() => fractionAtOrBelowPercentile(tf.tensor1d(v), q).dataSync()[0]), want);
  });

  it('are computed on the teacher’s weak view at T = 1; the strong view and the student do not move them', () => {
    const base = tf.tidy(() => {
      const m = mlkdMaskFractions(tf.tensor2d(TW), 50);
      return [m.sample.dataSync()[0], m.class.dataSync()[0]];
    });
    expect(base).toEqual([0.5, 2 / 3].map((x) => Math.fround(x)));
    // a different strong view or student changes no mask: the parts' masks stay
    const p = tf.tidy(() => {
      const parts = mlkdParts(logits(TS, SW, TW, SS), tf.tensor1d(Y, 'int32'), DEFAULTS);
      return [parts.sampleMask.dataSync()[0], parts.classMask.dataSync()[0]];
    });
    expect(p).toEqual(base);
  });

  it('have no gradient path that breaks when the target depends on trainable variables (a gradient-stopped peer)', () => {
    const g = tf.tidy(() => {
      const [ss, ts, y] = [tf.tensor2d(SS), tf.tensor2d(TS), tf.tensor1d(Y, 'int32')];
      // the "teacher" logits are a function of the differentiated input (as a DML peer's are of its weights)
      const [dw, dt] = tf.grads((sw: tf.Tensor, peer: tf.Tensor) => {
        const stopped = tf.customGrad(((x: tf.Tensor) => ({ value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) })) as never) as unknown as (x: tf.Tensor) => tf.Tensor;
        return mlkd({ studentWeak: sw, studentStrong: ss, teacherWeak: stopped(peer), teacherStrong: ts }, y, DEFAULTS);
      })([tf.tensor2d(SW), tf.tensor2d(TW)]);
      return [Array.from(dw.dataSync()), Array.from(dt.dataSync())];
    });
    g[0].forEach((v, i) => expectClose(v, TORCH.cifar.gradWeak.flat()[i]));
    expect(g[1].every((v) => v === 0)).toBe(true);
  });
});

/** A step context for the plugin alone: both views, `input` → the view, `apply` → the logits of that role on that view. */
function stubStep(views: Record<string, tf.Tensor>, table: Record<string, Record<string, tf.Tensor>>, calls: { role: string; view: string; training?: boolean }[]) {
  const terms: { name: string; weight: number; value: tf.Scalar }[] = [];
  const viewOf = (x: tf.Tensor) => Object.keys(views).find((k) => views[k] === x) as string;
  const ctx = {
    epoch: 1,
    roles: TWO_ROLES,
    numClasses: 3,
    batch: { x: tf.zeros([4, 4, 4, 1]), y: tf.tensor1d(Y, 'int32'), indices: null, size: 4, views },
    input: (_role: string, view: string) => views[view],
    apply: (role: string, x: tf.Tensor, opts: { training?: boolean } = {}) => {
      const view = viewOf(x);
      calls.push({ role, view, training: opts.training });
      return table[role][view];
    },
    outputs: () => {
      throw new Error('mlkd must not read ctx.outputs');
    },
    addLoss: (t: LossTerm) => void terms.push({ name: t.name as string, weight: t.weight ?? 1, value: t.value }),
  } as unknown as StepContext;
  return { ctx, terms };
}

function handlerOf(options: Record<string, unknown>): (ctx: StepContext) => void {
  const plugin = mlkdLoss.create(mlkdLoss.options.parse(options), fakePluginDeps('loss/mlkd', TWO_ROLES));
  let handler: ((ctx: StepContext) => void) | undefined;
  plugin.register({ on: (hook: string, h: unknown) => void (hook === 'loss' && (handler = h as never)) } as never);
  return handler as (ctx: StepContext) => void;
}

describe('loss/mlkd plugin', () => {
  it('defaults: the reference’s temperatures, 50th percentile, CE 0.1, KD 0.9, views weak / strong', () => {
    expect(DEFAULTS).toEqual({
      ccScale: 1,
      bcScale: 1,
      temperatures: [4, 3, 5, 2, 6],
      strongTemperatures: [4, 3, 5],
      unmaskedWeakTemperatures: [2, 6],
      percentile: 50,
      ceWeight: 0.1,
      kdWeight: 0.9,
      weakView: 'weak',
      strongView: 'strong',
      student: 'student',
      teacher: 'teacher',
    });
    expect(mlkdLoss.requires?.(DEFAULTS)).toEqual({ roles: ['student', 'teacher'], views: ['weak', 'strong'] });
  });

  it('refuses one view for both, a malformed view name, no temperature (KD_PLUGIN_OPTIONS at the option)', () => {
    const at = (w: Record<string, unknown>) => {
      try {
        validate(mlkdLoss.options, w, { code: 'KD_PLUGIN_OPTIONS', prefix: 'plugins[0].with' });
        return null;
      } catch (e) {
        return e as { code: string; path: string };
      }
    };
    expect(at({ weakView: 'aug', strongView: 'aug' })).toMatchObject({ code: 'KD_PLUGIN_OPTIONS', path: 'plugins[0].with.strongView' });
    expect(at({ weakView: '1weak' })).toMatchObject({ code: 'KD_PLUGIN_OPTIONS', path: 'plugins[0].with.weakView' });
    expect(at({ temperatures: [] })).toMatchObject({ code: 'KD_PLUGIN_OPTIONS', path: 'plugins[0].with.temperatures' });
    expect(at({ percentile: 101 })).toMatchObject({ code: 'KD_PLUGIN_OPTIONS', path: 'plugins[0].with.percentile' });
  });

  it('runs the student (training) and the teacher (inference) on both views and adds ce, kd, cc, bc with the reference’s weights', () => {
    tf.tidy(() => {
      const views = { weak: tf.ones([4, 4, 4, 1]), strong: tf.zeros([4, 4, 4, 1]) };
      const table = { student: { weak: tf.tensor2d(SW), strong: tf.tensor2d(SS) }, teacher: { weak: tf.tensor2d(TW), strong: tf.tensor2d(TS) } };
      const calls: { role: string; view: string; training?: boolean }[] = [];
      const { ctx, terms } = stubStep(views, table, calls);
      handlerOf({})(ctx);
      expect(calls).toEqual([
        { role: 'student', view: 'weak', training: true },
        { role: 'student', view: 'strong', training: true },
        { role: 'teacher', view: 'weak', training: false },
        { role: 'teacher', view: 'strong', training: false },
      ]);
      expect(terms.map((t) => [t.name, t.weight])).toEqual([
        ['loss/mlkd:ce', 0.1],
        ['loss/mlkd:kd', 0.9],
        ['loss/mlkd:cc', 0.9],
        ['loss/mlkd:bc', 0.9],
      ]);
      const [ce, kd, cc, bc] = terms.map((t) => t.weight * t.value.dataSync()[0]);
      expectClose(ce, TORCH.cifar.loss_ce);
      expectClose(kd, TORCH.cifar.loss_kd);
      expectClose(cc, TORCH.cifar.loss_cc);
      expectClose(bc, TORCH.cifar.loss_bc);
    });
  });

  it('reads the views named by weakView / strongView', () => {
    tf.tidy(() => {
      const views = { a: tf.ones([4, 4, 4, 1]), b: tf.zeros([4, 4, 4, 1]) };
      const table = { student: { a: tf.tensor2d(SW), b: tf.tensor2d(SS) }, teacher: { a: tf.tensor2d(TW), b: tf.tensor2d(TS) } };
      const calls: { role: string; view: string }[] = [];
      const { ctx, terms } = stubStep(views, table, calls);
      handlerOf({ weakView: 'a', strongView: 'b' })(ctx);
      expect(calls.map((c) => c.view)).toEqual(['a', 'b', 'a', 'b']);
      expectClose(terms.reduce((s, t) => s + t.weight * t.value.dataSync()[0], 0), TORCH.cifar.total);
    });
  });

  it('stops the teacher’s gradient', () => {
    const g = tf.tidy(() =>
      Array.from(
        tf
          .grad((tw: tf.Tensor) => {
            const views = { weak: tf.ones([4, 4, 4, 1]), strong: tf.zeros([4, 4, 4, 1]) };
            const { ctx, terms } = stubStep(views, { student: { weak: tf.tensor2d(SW), strong: tf.tensor2d(SS) }, teacher: { weak: tw, strong: tf.tensor2d(TS) } }, []);
            handlerOf({})(ctx);
            return tf.addN(terms.map((t) => tf.mul(t.value, t.weight))) as tf.Scalar;
          })(tf.tensor2d(TW))
          .dataSync(),
      ),
    );
    expect(g.every((v) => v === 0)).toBe(true);
  });

  it('a missing view: KD_PLUGIN_DEPENDENCY naming it, the views written and the fix', () => {
    tf.tidy(() => {
      const { ctx } = stubStep({ weak: tf.ones([4, 4, 4, 1]) }, {}, []);
      let e: { code?: string; path?: string; message?: string; fix?: string } = {};
      try {
        handlerOf({})(ctx);
      } catch (x) {
        e = x as typeof e;
      }
      expect(e.code).toBe('KD_PLUGIN_DEPENDENCY');
      expect(e.path).toBe('plugins[0]');
      expect(e.message).toMatch(/no plugin wrote 'strong' in this step \(views written: weak\)/);
      expect(e.fix).toMatch(/view: strong/);
    });
  });
});
