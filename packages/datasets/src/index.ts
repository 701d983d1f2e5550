export * from './types';
export * from './idx';
export * from './fashion-mnist';
export * from './fashion-scenes';
export * from './cifar';
export * from './synthetic';
export * from './module';
