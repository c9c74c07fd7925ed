/**
 * The employee-id rule (model/employee-id.ts): ids are case-folded to upper case at every door,
 * unless the config says the HR system's ids are case-sensitive.
 */
import assert from 'node:assert/strict';
import { employeeIdCase, useEmployeeIdCase } from '../model/employee-id.js';
import { hrEventSchema } from '../model/hr-event.js';
import { employeeIdSchema, workflowIdFor } from '../model/request.js';
import { listFiltersSchema, visibilityQuery } from '../client/offboardings.js';
import { parseConfig } from '../workers/config.js';

describe('employee ids: one person, one id', () => {
  afterEach(() => useEmployeeIdCase('upper'));

  it('by default e1021 and E1021 are one id in the event, the workflow id and the list filter', () => {
    const event = hrEventSchema.parse({
      eventId: 'hris-1',
      type: 'termination',
      employeeId: 'e1021',
      reason: 'voluntary',
      effectiveAt: '2026-12-01T00:00:00Z',
      managerEmployeeId: 'e1000',
    });
    assert.equal(event.employeeId, 'E1021');
    assert.equal(event.managerEmployeeId, 'E1000');
    assert.equal(workflowIdFor('e1021'), workflowIdFor('E1021'));
    assert.equal(workflowIdFor('e1021'), 'offboarding-E1021');
    const filters = listFiltersSchema.parse({ employeeId: 'e1021' });
    assert.match(visibilityQuery(filters)!, /OffboardingEmployeeId = "E1021"/);
  });

  it('employeeIds.case: preserve keeps case-sensitive ids apart, and applies before reports are read', () => {
    const config = parseConfig(
      {
        employeeIds: { case: 'preserve' },
        api: { tokens: [{ subject: 'mgr', role: 'manager', token: { env: 'T' }, reports: ['aB12'] }] },
      },
      'the test',
      { T: 'x'.repeat(32) },
    );
    assert.equal(employeeIdCase(), 'preserve');
    assert.deepEqual(config.api?.tokens[0]?.reports, ['aB12']);
    assert.notEqual(workflowIdFor('ab12'), workflowIdFor('AB12'));
    assert.equal(employeeIdSchema.parse('aB12'), 'aB12');
  });

  it('an unknown rule is a config error naming the field', () => {
    assert.throws(() => parseConfig({ employeeIds: { case: 'lower' } }, 'the test', {}), /employeeIds\.case/);
  });
});
