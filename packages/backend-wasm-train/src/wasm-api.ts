/**
 * The few WebAssembly JS-API types this package uses. The project compiles against ES2022 + Node
 * types without the DOM lib, which is where TypeScript declares `WebAssembly`; the runtime (Node,
 * browsers) has it as a global.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
export interface WasmMemoryDescriptor {
  initial: number;
  maximum?: number;
  shared?: boolean;
}
export interface WasmApi {
  Memory: { new (descriptor: WasmMemoryDescriptor): WasmMemory; prototype: WasmMemory };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}

/** The global WebAssembly object, or null where there is none. */
export function wasmApi(): WasmApi | null {
  const wa = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
  return typeof wa === 'object' && wa != null ? wa : null;
}
