// Test-wide tfjs settings. PROD silences tfjs's "install tfjs-node" banner (tests use cpu/wasm on
// purpose). Not IS_TEST: that flag turns on tfjs's per-kernel leak check, which misreports the
// tensors a custom-gradient op (fused matMul) saves for backprop on the wasm backend as a leak.
// Our own leak tests count tf.memory() over many steps instead.
require('@tensorflow/tfjs-core').env().set('PROD', true);
