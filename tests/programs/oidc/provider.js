// A real OpenID Connect provider (node's certified `oidc-provider`) for the console's
// sign-in tests. It is configured from a JSON file named on the command line:
//   {"port": 4010, "clients": [{client_id, client_secret, redirect_uris}],
//    "accounts": {"lee": {"name": "Lee", "roles": ["legal"]}}, "roles_claim": "fairlane_roles"}
// Sign-in goes through the library's own interaction pages (devInteractions: a login
// form, then a consent form), posted over real HTTP; only listed accounts exist, and the
// roles claim is put in the ID token. It prints "listening <issuer>" once it serves.
import fs from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;
const rolesClaim = config.roles_claim;
const scopes = ['openid', 'profile', 'roles'];

const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    ...client,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  pkce: { required: () => true },
  scopes,
  claims: { openid: ['sub'], profile: ['name'], roles: [rolesClaim] },
  // The roles claim travels in the ID token itself, as most enterprise providers do.
  conformIdTokenClaims: false,
  cookies: { keys: [config.cookie_key || 'fairlane-test-provider-cookie-key'] },
  ttl: { Session: 3600, Interaction: 600, Grant: 3600, AuthorizationCode: 60, IdToken: 600, AccessToken: 600 },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const account = config.accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: account.name || id, [rolesClaim]: account.roles };
      },
    };
  },
});
provider.proxy = false;
provider.on('server_error', (ctx, err) => console.error('server_error', err));

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
