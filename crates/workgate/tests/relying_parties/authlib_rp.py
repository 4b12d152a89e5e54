"""A relying party written with Authlib (PyPI), run by tests/api/oidc_authlib.rs against a live
Workgate: discovery, the authorization code flow with PKCE and nonce (the browser part is a
`requests` session holding the member's Workgate session cookie), the ID token verified against
the JWKS, userinfo, refresh, introspection and revocation.

Usage: authlib_rp.py BASE CLIENT_ID CLIENT_SECRET REDIRECT_URI SESSION_COOKIE MEMBER_ID PHONE
Exits non-zero with the reason when anything is not as OpenID Connect says.
"""

import sys

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken


def main() -> None:
    base, client_id, client_secret, redirect_uri, session_cookie, member_id, phone = sys.argv[1:8]
    meta = requests.get(f"{base}/.well-known/openid-configuration", timeout=10).json()
    assert meta["issuer"] == base, meta
    assert "S256" in meta["code_challenge_methods_supported"], meta

    rp = OAuth2Session(
        client_id,
        client_secret,
        scope="openid profile phone",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(48)
    nonce = generate_token(24)
    url, state = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)

    browser = requests.Session()
    browser.cookies.set("wg_access", session_cookie)
    answer = browser.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code in (302, 303), (answer.status_code, answer.text)
    callback = answer.headers["Location"]
    assert callback.startswith(redirect_uri), callback

    token = rp.fetch_token(meta["token_endpoint"], authorization_response=callback, state=state, code_verifier=verifier)
    keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"],
        keys,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": base}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate()
    assert claims["sub"] == member_id, claims
    assert claims["phone_number"] == phone, claims

    info = rp.get(meta["userinfo_endpoint"], timeout=10).json()
    assert info["sub"] == member_id and info["phone_number"] == phone, info

    renewed = rp.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert renewed["access_token"] != token["access_token"], renewed

    def active(value: str) -> bool:
        body = requests.post(
            meta["introspection_endpoint"], data={"token": value}, auth=(client_id, client_secret), timeout=10
        ).json()
        return body["active"]

    assert active(renewed["access_token"])
    revoked = rp.revoke_token(
        meta["revocation_endpoint"], token=renewed["refresh_token"], token_type_hint="refresh_token"
    )
    assert revoked.status_code == 200, revoked.text
    assert not active(renewed["access_token"]), "revoking the refresh token ends its grant"
    print("authlib relying party: every step passed")


if __name__ == "__main__":
    main()
