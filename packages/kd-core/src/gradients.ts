// Losses, optimizers and the stop-gradient here are differentiated: tfjs-core alone registers no
// gradients; tfjs-layers (a peer of kd-core, which every model needs anyway) registers all of them
// on import, in Node's CommonJS build and in browser bundles alike.
import '@tensorflow/tfjs-layers';
