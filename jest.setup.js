// Test-wide tfjs settings: IS_TEST silences tfjs's "install tfjs-node" banner (tests use cpu/wasm on
// purpose) without changing numerics.
require('@tensorflow/tfjs-core').env().set('IS_TEST', true);
