import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { klRows, targetLogits, type RoleInfo, type StepContext } from '@tfkd/kd-core';
import { expectClose, kl } from './__fixtures__/reference';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('klRows', () => {
  it('Σ_k p (log p − log q) per row; p = 0 entries contribute 0 even when log q = −∞', () => {
    // row 0: 0.5·log(0.5/0.25) + 0.5·log(0.5/0.75) = 0.5·0.693147 − 0.5·0.405465 = 0.143841
    // row 1: p = [1, 0], q = [0.5, 0] → 1·log(1/0.5) = 0.693147 (the 0·(log 0 − log 0) term is dropped)
    const r = tf.tidy(() =>
      klRows(tf.log(tf.tensor2d([[0.5, 0.5], [1, 0]])), tf.log(tf.tensor2d([[0.25, 0.75], [0.5, 0]]))).arraySync(),
    );
    expectClose(r[0], kl([0.5, 0.5], [0.25, 0.75]));
    expectClose(r[0], 0.143841, 1e-6);
    expectClose(r[1], Math.log(2));
  });
});

describe('targetLogits', () => {
  const roles: RoleInfo[] = [
    { name: 'teacher', kind: 'teacher', trainable: false },
    { name: 'student.0', kind: 'student', trainable: true },
    { name: 'student.1', kind: 'student', trainable: true },
  ];
  const ctxWith = (logits: Record<string, tf.Tensor>) =>
    ({ roles, outputs: (r: string) => ({ logits: logits[r], taps: {} }) }) as unknown as StepContext;

  it('stops the gradient of a peer student used as the target (DML), with the same values', () => {
    const peer = tf.tensor2d([[1, 2, 3]]);
    const [value, grad] = tf.tidy(() => {
      const f = (x: tf.Tensor) => tf.sum(tf.mul(targetLogits(ctxWith({ 'student.1': x }), 'student.1'), 2)) as tf.Scalar;
      return [f(peer).dataSync()[0], Array.from(tf.grad(f)(peer).dataSync())];
    });
    expect(value).toBe(12);
    expect(grad).toEqual([0, 0, 0]);
    peer.dispose();
  });

  it('passes a teacher’s logits through unchanged (the engine already stopped them)', () => {
    const t = tf.tensor2d([[1, 2, 3]]);
    expect(targetLogits(ctxWith({ teacher: t }), 'teacher')).toBe(t);
    t.dispose();
  });
});

describe('klRows on the gradient tape', () => {
  it('works when the target is a gradient-stopped trainable tensor (DML peer): zero gradient to the peer', () => {
    const peer = tf.variable(tf.tensor2d([[1, 0, -1]]), true, 'peer-logits');
    const own = tf.variable(tf.tensor2d([[0, 0.5, 0]]), true, 'own-logits');
    const ctx = {
      roles: [{ name: 'student.1', kind: 'student', trainable: true }],
      outputs: () => ({ logits: peer, taps: {} }),
    } as unknown as StepContext;
    const { value, grads } = tf.variableGrads(
      () => tf.mean(klRows(tf.logSoftmax(targetLogits(ctx, 'student.1')), tf.logSoftmax(own))) as tf.Scalar,
      [peer, own],
    );
    const pt = [1, 0, -1].map((v) => Math.exp(v));
    const s = pt.reduce((a, b) => a + b);
    const qs = [0, 0.5, 0].map((v) => Math.exp(v));
    const sq = qs.reduce((a, b) => a + b);
    expectClose(value.dataSync()[0], kl(pt.map((v) => v / s), qs.map((v) => v / sq)));
    expect(Array.from(grads['peer-logits'].dataSync())).toEqual([0, 0, 0]);
    // d/dz_own KL(p ‖ softmax(z_own)) = softmax(z_own) − p
    Array.from(grads['own-logits'].dataSync()).forEach((g, k) => expectClose(g, qs[k] / sq - pt[k] / s));
    tf.dispose([peer, own, value, ...Object.values(grads)]);
  });
});
