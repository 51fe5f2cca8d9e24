import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const { gatewayKeySecretPattern, gatewayKeySecretGrant } = require('../../deploy/secret-names.cjs') as {
  gatewayKeySecretPattern: (name: string) => string;
  gatewayKeySecretGrant: (ctx: { resolveVariable: (v: string) => Promise<string> }) => Promise<string>;
};

describe('deploy/secret-names.cjs: the gateway key secret as an IAM pattern', () => {
  it('keeps one secret name as it is: the grant stays exact', () => {
    expect(gatewayKeySecretPattern('iotcore-relay/prod/gateway-keys')).toBe('iotcore-relay/prod/gateway-keys');
  });

  it('widens only the {gateway} placeholder, to *', () => {
    expect(gatewayKeySecretPattern('iotcore-relay/prod/gateway-keys/{gateway}')).toBe('iotcore-relay/prod/gateway-keys/*');
  });

  it('reads the stage parameter through the framework resolver', async () => {
    const asked: string[] = [];
    const grant = await gatewayKeySecretGrant({
      resolveVariable: async (v) => {
        asked.push(v);
        return 'keys/{gateway}';
      },
    });
    expect(asked).toEqual(['param:gatewayKeySecret']);
    expect(grant).toBe('keys/*');
  });
});
