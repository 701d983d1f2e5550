export { drawCropOffsets, randomCrop, randomCropAugment, randomCropSchema, type PadMode, type RandomCropOptions } from './crop';
export { drawErasingBoxes, eraseBoxes, randomErasingAugment, randomErasingSchema, type Boxes, type ErasingDraw, type RandomErasingOptions } from './erasing';
export { drawFlips, flipAugment, flipSchema, horizontalFlip, type FlipOptions } from './flip';
export { defineAugment, like, readImages, readTargets, replaceImages, viewOf, viewOption, type Images } from './image';
export {
  cutmix,
  cutmixAugment,
  cutmixSchema,
  cutmixStep,
  drawCutmixBox,
  mixTargets,
  mixup,
  mixupAugment,
  mixupSchema,
  mixupStep,
  type Box,
  type CutmixOptions,
  type MixPlugin,
  type MixRecord,
  type MixupOptions,
} from './mix';
export { AUGMENTATIONS, augmentModule, kdModule } from './module';
export {
  RANDAUGMENT_OPS,
  applyOp,
  drawRandAugmentPlan,
  opMagnitude,
  opsFor,
  randAugment,
  randAugmentAugment,
  randAugmentSchema,
  type Image,
  type RandAugmentOp,
  type RandAugmentOptions,
  type RandAugmentPlan,
} from './randaugment';
