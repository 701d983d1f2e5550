'use strict';
// A third-party plugin: `loss/confidence-penalty` (Pereyra et al. 2017), −β·H(softmax(z_s)) added to
// the loss, i.e. it rewards less confident students. Written against the public entry points of
// @tfkd/kd-core only, and loaded by a spec's `packages: [./third-party-plugin]`.
const tf = require('@tensorflow/tfjs-core');
const { defineLoss, PLUGIN_DEFINITION } = require('@tfkd/kd-core');
const { ContainerModule } = require('inversify');
const { z } = require('zod');

/** −mean_b H(softmax(z_b)) = mean_b Σ_k p log p (a scalar ≤ 0). */
function negativeEntropy(logits) {
  return tf.tidy(() => {
    const logp = tf.logSoftmax(logits);
    return tf.mean(tf.sum(tf.mul(tf.exp(logp), logp), 1));
  });
}

const confidencePenalty = defineLoss({
  id: 'loss/confidence-penalty',
  describe: 'confidence penalty (Pereyra et al. 2017): mean Σ p log p of the student; weight β (0.1 in the paper)',
  options: z.object({ student: z.string().default('student').describe('role to regularise') }).strict(),
  requires: (o) => ({ roles: [o.student] }),
  compute: (ctx, o) => negativeEntropy(ctx.outputs(o.student).logits),
});

const kdModule = new ContainerModule((options) => {
  options.bind(PLUGIN_DEFINITION).toConstantValue(confidencePenalty);
});

module.exports = { kdModule, confidencePenalty, negativeEntropy };
