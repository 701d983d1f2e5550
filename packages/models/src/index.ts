export * from './zoo';
export * from './module';
export * from './taps';
export * from './flops';
export * from './io';
export * from './fold-bn';
