-- ID tokens signed ES256 for the apps that register for it (RS256 stays the default).
ALTER TABLE apps ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'RS256';
-- Each signing-key generation also has a P-256 key: its PKCS#8 (base64), encrypted under the key
-- file like the RSA key, and its public JWK. Generations made before have none until one is
-- needed.
ALTER TABLE signing_keys ADD COLUMN ec_private TEXT;
ALTER TABLE signing_keys ADD COLUMN ec_public_jwk TEXT;
