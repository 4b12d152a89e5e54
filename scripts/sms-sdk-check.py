#!/usr/bin/env python3
"""Check captured SMS gateway requests against the official SDKs' own signing code.

Usage:  python3 scripts/sms-sdk-check.py CAPTURE.jsonl

Each line of CAPTURE.jsonl is one request our server sent:
  {"provider": "tencent" | "alibaba", "method": "POST", "uri": "/?A=b&...",
   "headers": {"lowercase-name": "value", ...}, "body": "<body text>",
   "secret_id": "...", "secret_key": "..."}

The point of this script is to be an independent oracle for our Rust signer:
it never re-implements TC3 or ACS3, it feeds the captured request into the
functions the SDKs themselves call when they sign (Tencent:
AbstractClient._get_tc3_signature -> Sign.sign_tc3; Alibaba:
alibabacloud_tea_openapi Utils.get_authorization / Utils.hash). It also
re-serialises the logical SendSms request through the SDK request models so
that a misspelled or unknown parameter name shows up even when the
signature is consistent.

Prints one line per request; exit 0 = all ok, 1 = any mismatch or unreadable
line, 2 = an SDK is not installed.
"""
import contextlib
import json
import sys
import urllib.parse
import warnings
from datetime import datetime, timezone
from types import SimpleNamespace

PIP = ("pip install alibabacloud-dysmsapi20170525 alibabacloud-tea-openapi "
       "tencentcloud-sdk-python-sms")
try:
    import tencentcloud.common.abstract_client as tc_abstract
    from tencentcloud.sms.v20210111 import models as tc_models
    from tencentcloud.sms.v20210111.sms_client import SmsClient
    from alibabacloud_tea_openapi.utils import Utils as AliUtils
    from alibabacloud_dysmsapi20170525 import models as ali_models
    from alibabacloud_dysmsapi20170525.client import Client as DysmsClient
    from darabonba.request import DaraRequest
except ImportError as e:
    print(f"SDK not installed ({e}): {PIP}", file=sys.stderr)
    sys.exit(2)

# API identity as the generated SDK clients hard-code it.
TC_SERVICE, TC_VERSION = SmsClient._service, SmsClient._apiVersion
ALI_VERSION = "2017-05-25"
# Headers the ACS3 docs require in SignedHeaders; the SDK signs all of them
# (plus accept, user-agent, x-acs-credentials-provider, which are optional).
ALI_MUST_SIGN = {"host", "x-acs-action", "x-acs-version", "x-acs-date",
                 "x-acs-signature-nonce", "x-acs-content-sha256"}


@contextlib.contextmanager
def tap(owner, attr, make_wrapper, seen):
    """Temporarily wrap owner.attr so we can show the canonical request the
    SDK hashed, without copying the SDK's canonicalisation code."""
    original = vars(owner)[attr]  # raw attribute, so a staticmethod stays one
    setattr(owner, attr, make_wrapper(original, seen))
    try:
        yield
    finally:
        setattr(owner, attr, original)


def parse_auth(value):
    """'ALGO k1=v1, k2=v2' (Tencent) or 'ALGO k1=v1,k2=v2' (Alibaba) -> (algo, dict)."""
    algo, _, rest = value.partition(" ")
    fields = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
    return algo, fields


def split_uri(uri):
    parts = urllib.parse.urlsplit(uri)
    return parts.path or "/", parts.query


# ---------------------------------------------------------------- Tencent --

def check_tencent(r):
    h, problems = r["headers"], []
    got = h.get("authorization", "")
    _, fields = parse_auth(got)
    ts = h["x-tc-timestamp"]
    # The SDK derives the scope date from X-TC-Timestamp in UTC (inline code
    # in _build_req_with_tc3_signature, so mirrored here).
    date = datetime.fromtimestamp(int(ts), timezone.utc).strftime("%Y-%m-%d")
    path, query = split_uri(r["uri"])
    # _get_tc3_signature only reads these attributes of its request object.
    req = SimpleNamespace(method=r["method"], uri=path, data=r["body"], header={
        "Content-Type": h.get("content-type", ""), "Host": h.get("host", ""),
        "X-TC-Timestamp": ts})
    if "x-tc-content-sha256" in h:
        req.header["X-TC-Content-SHA256"] = h["x-tc-content-sha256"]
    if r["method"] == "GET":
        req.data = query  # the SDK signs the query as canonical query string for GET
    elif query:
        problems.append(f"query {query!r} on {r['method']}: the SDK never sends one and signs ''")

    seen = []
    def hashing(orig, seen):  # noqa: E306 - records every sha256 input
        return SimpleNamespace(sha256=lambda data=b"": (seen.append(data), orig.sha256(data))[1])
    with tap(tc_abstract, "hashlib", hashing, seen):
        sig = tc_abstract.AbstractClient._get_tc3_signature(
            None, None, req, date, TC_SERVICE, r["secret_key"])
    # Same format string as the SDK's _build_req_with_tc3_signature.
    expected = ("TC3-HMAC-SHA256 Credential=%s/%s/%s/tc3_request, "
                "SignedHeaders=content-type;host, Signature=%s"
                % (r["secret_id"], date, TC_SERVICE, sig))
    canonical = seen[-1].decode() if seen else "?"

    # Would the SDK send the same logical request?
    if h.get("x-tc-action") != "SendSms" or h.get("x-tc-version") != TC_VERSION:
        problems.append(f"action/version {h.get('x-tc-action')}/{h.get('x-tc-version')}, "
                        f"SDK sends SendSms/{TC_VERSION}")
    # The SDK sends 'application/json'; Tencent's API documentation signs its worked example with
    # the charset parameter. Both are JSON as the API reads it, and the signature covers the value.
    if r["method"] == "POST" and h.get("content-type") not in ("application/json", "application/json; charset=utf-8"):
        problems.append(f"content-type {h.get('content-type')!r}, SDK sends 'application/json'")
    try:
        sent = json.loads(r["body"])
        model = tc_models.SendSmsRequest()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the SDK warns on unknown keys; we report them
            model._deserialize(sent)
        if model._serialize() != sent:
            problems.append(f"body keys {sorted(sent)} != SDK SendSmsRequest keys "
                            f"{sorted(model._serialize())}")
        for key in ("PhoneNumberSet", "SmsSdkAppId", "TemplateId"):
            if key not in sent:
                problems.append(f"required {key} missing")
    except (ValueError, AttributeError) as e:
        problems.append(f"body is not a SendSms JSON object: {e}")
    summary = f"{fields.get('Credential', '?')} {h.get('x-tc-action')}"
    return expected, got, canonical, problems, summary


# ---------------------------------------------------------------- Alibaba --

def check_alibaba(r):
    h, problems = r["headers"], []
    got = h.get("authorization", "")
    algo, fields = parse_auth(got)
    signed = [s for s in fields.get("SignedHeaders", "").split(";") if s]
    path, raw_query = split_uri(r["uri"])
    # Decode the query the way the SDK's transport encodes it (urlencode /
    # quote_plus): '+' means space, so an unescaped '+' in a phone number is a bug.
    query = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
    body = r["body"].encode()

    payload = AliUtils.hash(body, algo)
    if payload is None:
        return "?", got, "", [f"algorithm {algo!r} unknown to the SDK"], ""
    if h.get("x-acs-content-sha256") != payload.hex():
        problems.append(f"x-acs-content-sha256 {h.get('x-acs-content-sha256')} != "
                        f"SDK hash of body {payload.hex()}")
    missing = sorted(ALI_MUST_SIGN - set(signed))
    if missing:
        problems.append(f"not signed but the SDK always signs: {', '.join(missing)}")
    absent = [s for s in signed if s not in h]
    if absent:
        problems.append(f"SignedHeaders lists headers not sent: {', '.join(absent)}")

    # The SDK signs every header it holds; the server re-signs only those named
    # in SignedHeaders, so give the SDK exactly those.
    req = DaraRequest()
    req.method, req.pathname, req.query = r["method"], path, query
    req.headers = {k: h[k] for k in signed if k in h}
    seen = []
    def hashing(orig, seen):  # noqa: E306 - records every hash input
        return staticmethod(lambda raw, t: (seen.append(raw), orig(raw, t))[1])
    with tap(AliUtils, "hash", hashing, seen):
        expected = AliUtils.get_authorization(req, algo, payload.hex(),
                                              r["secret_id"], r["secret_key"])
    canonical = seen[-1].decode() if seen else "?"

    # Would the SDK send the same logical request? Round-trip the query through
    # the SDK model: unknown names drop out, as send_sms_with_options would.
    if h.get("x-acs-action") != "SendSms" or h.get("x-acs-version") != ALI_VERSION:
        problems.append(f"action/version {h.get('x-acs-action')}/{h.get('x-acs-version')}, "
                        f"SDK sends SendSms/{ALI_VERSION}")
    if (r["method"], path) != ("POST", "/"):
        problems.append(f"{r['method']} {path}, SDK sends POST /")
    sdk_query = AliUtils.query(ali_models.SendSmsRequest().from_map(query).to_map())
    if sdk_query != query:
        problems.append(f"query names {sorted(query)} != SDK SendSms names {sorted(sdk_query)}")
    for key in ("PhoneNumbers", "SignName", "TemplateCode"):
        if key not in query:
            problems.append(f"required {key} missing")
    if body:
        problems.append("non-empty body; the SDK sends SendSms parameters in the query only")
    summary = f"{fields.get('Credential', '?')} {h.get('x-acs-action')}"
    return expected, got, canonical, problems, summary


def main(argv):
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    failed = False
    with open(argv[1], encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                r["headers"] = {k.lower(): v for k, v in r["headers"].items()}
                check = {"tencent": check_tencent, "alibaba": check_alibaba}[r["provider"]]
                expected, got, canonical, problems, summary = check(r)
            except (ValueError, KeyError, TypeError) as e:
                print(f"UNREADABLE line {n}: {type(e).__name__}: {e}")
                failed = True
                continue
            prov = r["provider"]
            if expected != got:
                failed = True
                print(f"MISMATCH {prov} line {n}: expected {expected!r}, got {got!r}")
                print("  canonical request the SDK built:")
                print("\n".join("    | " + l for l in canonical.split("\n")))
            else:
                print(f"ok {prov} line {n}: {summary}")
            for p in problems:
                failed = True
                print(f"  DIFF {prov} line {n}: {p}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
