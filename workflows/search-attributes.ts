import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

// Identifiers only: search attributes are stored in plain text, outside the payload codec.
export const EmployeeIdKey = defineSearchAttributeKey('OffboardingEmployeeId', SearchAttributeType.KEYWORD);
export const StageKey = defineSearchAttributeKey('OffboardingStage', SearchAttributeType.KEYWORD);
export const ModeKey = defineSearchAttributeKey('OffboardingMode', SearchAttributeType.KEYWORD);
export const HeldKey = defineSearchAttributeKey('OffboardingHeld', SearchAttributeType.BOOL);
export const EffectiveAtKey = defineSearchAttributeKey('OffboardingEffectiveAt', SearchAttributeType.DATETIME);

/** For `temporal server start-dev --search-attribute` and the operator service. */
export const SEARCH_ATTRIBUTES = {
  OffboardingEmployeeId: 'Keyword',
  OffboardingStage: 'Keyword',
  OffboardingMode: 'Keyword',
  OffboardingHeld: 'Bool',
  OffboardingEffectiveAt: 'Datetime',
} as const;
