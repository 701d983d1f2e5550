export { bornAgainLoss, bornAgainSchema, type BornAgainOptions } from './born-again';
export { byotLoss, byotPlugin, byotSchema, byotTerms, type ByotExit, type ByotOptions, type ByotTermValues } from './byot';
export { klDivergence, virtualTeacher, type KlReduction } from './common';
export { SELF_DISTILL_PLUGINS, kdModule, selfDistillModule } from './module';
export {
  VIRTUAL_VARIANTS,
  calibratedTerms,
  resolveVirtual,
  tfKdCalibratedLoss,
  tfKdCalibratedSchema,
  tfKdSelfLoss,
  tfKdSelfSchema,
  tfKdSelfTerms,
  tfKdVirtualLoss,
  tfKdVirtualSchema,
  virtualTeacherLoss,
  virtualTargetLog,
  virtualTeacherTerms,
  type TfKdSelfOptions,
  type TfKdVirtualOptions,
  type VirtualTeacherParams,
  type VirtualVariant,
} from './tf-kd';
