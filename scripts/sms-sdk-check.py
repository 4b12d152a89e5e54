#!/usr/bin/env python3
"""Check captured SMS gateway requests against the official SDKs' own signing code.

Usage:  python3 scripts/sms-sdk-check.py CAPTURE.jsonl

Each line of CAPTURE.jsonl is one request our server sent:
  {"provider": "tencent" | "alibaba" | "twilio", "method": "POST", "uri": "/?A=b&...",
   "headers": {"lowercase-name": "value", ...}, "body": "<body text>",
   "secret_id": "...", "secret_key": "..."}
(for twilio, secret_id is the Account SID and secret_key the Auth Token).

The point of this script is to be an independent oracle for our Rust signer:
it never re-implements TC3 or ACS3, it feeds the captured request into the
functions the SDKs themselves call when they sign (Tencent:
AbstractClient._get_tc3_signature -> Sign.sign_tc3; Alibaba:
alibabacloud_tea_openapi Utils.get_authorization / Utils.hash). It also
re-serialises the logical SendSms request through the SDK request models so
that a misspelled or unknown parameter name shows up even when the
signature is consistent.

Twilio has no request signature, so there the SDK is the oracle for the whole
request: the form fields of our body are fed to twilio.rest.Client(...,
http_client=<recorder>).messages.create(), and the method, URL path, Basic
credentials and body the SDK hands its transport (body encoded as
TwilioHttpClient's requests.Request(data=dict) would put it on the wire) must
equal ours byte for byte. SDKs are imported only for providers present in
the file.

Prints one line per request; exit 0 = all ok, 1 = any mismatch or unreadable
line, 2 = an SDK is not installed.
"""
import base64
import contextlib
import json
import logging
import sys
import urllib.parse
import warnings
from datetime import datetime, timezone
from types import SimpleNamespace

# The SDKs are imported only for the providers a capture file uses (see
# load_sdks), so a file with no twilio lines does not need twilio installed.
PIP = {
    "tencent": "pip install tencentcloud-sdk-python-sms",
    "alibaba": "pip install alibabacloud-dysmsapi20170525 alibabacloud-tea-openapi",
    "twilio": "pip install twilio==9.13.0",
}


def import_tencent():
    global tc_abstract, tc_models, SmsClient, TC_SERVICE, TC_VERSION
    import tencentcloud.common.abstract_client as tc_abstract
    from tencentcloud.sms.v20210111 import models as tc_models
    from tencentcloud.sms.v20210111.sms_client import SmsClient
    # API identity as the generated SDK client hard-codes it.
    TC_SERVICE, TC_VERSION = SmsClient._service, SmsClient._apiVersion


def import_alibaba():
    global AliUtils, ali_models, DysmsClient, DaraRequest
    from alibabacloud_tea_openapi.utils import Utils as AliUtils
    from alibabacloud_dysmsapi20170525 import models as ali_models
    from alibabacloud_dysmsapi20170525.client import Client as DysmsClient
    from darabonba.request import DaraRequest


def import_twilio():
    global twilio, TwilioClient, TwilioHttpClientBase, TwilioResponse, requests
    import requests
    import twilio
    import twilio.base.exceptions
    from twilio.rest import Client as TwilioClient
    from twilio.http import HttpClient as TwilioHttpClientBase
    from twilio.http.response import Response as TwilioResponse


IMPORTERS = {"tencent": import_tencent, "alibaba": import_alibaba, "twilio": import_twilio}


def load_sdks(providers):
    """Import the SDKs for these providers; False (after saying so) if one is missing."""
    for prov in sorted(p for p in providers if p in IMPORTERS):
        try:
            IMPORTERS[prov]()
        except ImportError as e:
            print(f"SDK not installed ({e}): {PIP[prov]}", file=sys.stderr)
            return False
    return True


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


# ----------------------------------------------------------------- Twilio --

TWILIO_FIELDS = ("To", "Body", "From", "MessagingServiceSid")


def twilio_recorder():
    """A twilio.http.HttpClient that records what the SDK hands its transport
    and answers 201 without touching the network."""
    class Recorder(TwilioHttpClientBase):
        def __init__(self):
            super().__init__(logging.getLogger("sms-sdk-check.twilio"), False)
            self.calls = []

        def request(self, method, url, params=None, data=None, headers=None,
                    auth=None, timeout=None, allow_redirects=False):
            self.calls.append(SimpleNamespace(method=method, url=url, params=params, data=data,
                                              headers=dict(headers or {}), auth=auth))
            return TwilioResponse(201, '{"sid": "SM00000000000000000000000000000000", '
                                       '"status": "queued"}')
    return Recorder()


def twilio_wire_body(call):
    """The body TwilioHttpClient.request would put on the wire: it passes the
    data dict to requests.Request(data=...) unless the content type is JSON."""
    return requests.Request(call.method.upper(), call.url, params=call.params, data=call.data,
                            headers=call.headers, auth=call.auth).prepare().body or ""


def check_twilio(r):
    h, problems = r["headers"], []
    path, query = split_uri(r["uri"])
    # Our Basic credentials, decoded.
    scheme, _, b64 = h.get("authorization", "").partition(" ")
    try:
        user, sep, password = base64.b64decode(b64, validate=True).decode().partition(":")
        got_auth = f"{user}:{password}" if scheme.lower() == "basic" and sep else None
    except (ValueError, UnicodeDecodeError):
        got_auth = None
    if got_auth is None:
        problems.append(f"authorization {h.get('authorization', '')!r} is not HTTP Basic user:password")
        got_auth = "?"

    # What the message is, read from our form body the way Twilio's server reads it.
    pairs = urllib.parse.parse_qsl(r["body"], keep_blank_values=True)
    form = dict(pairs)
    dup = sorted({k for k, _ in pairs if sum(1 for k2, _ in pairs if k2 == k) > 1})
    if dup:
        problems.append(f"form fields sent more than once: {', '.join(dup)}")
    unknown = sorted(set(form) - set(TWILIO_FIELDS))
    if unknown:
        problems.append(f"form fields the SDK does not send for this message: {', '.join(unknown)}")
    if "To" not in form:
        problems.append("required To missing")
    if ("From" in form) == ("MessagingServiceSid" in form):
        problems.append("exactly one of From / MessagingServiceSid expected")
    if "Body" not in form:
        problems.append("Body missing")
    for key in ("To", "From"):
        # A raw '+' in the body is a space to Twilio (and re-encodes to the
        # same bytes), so the byte comparison alone cannot see it.
        if key in form and form[key] != form[key].strip():
            problems.append(f"{key} decodes to {form[key]!r}: unescaped '+' (send %2B)?")

    # The request the SDK itself builds for the same message.
    rec = twilio_recorder()
    try:
        client = TwilioClient(r["secret_id"], r["secret_key"], http_client=rec)
    except twilio.base.exceptions.TwilioException as e:
        raise ValueError(f"twilio Client rejected the credentials: {e}") from e
    kwargs = {"to": form.get("To"), "body": form.get("Body")}
    if "MessagingServiceSid" in form:
        kwargs["messaging_service_sid"] = form["MessagingServiceSid"]
    if "From" in form:
        kwargs["from_"] = form["From"]
    client.messages.create(**kwargs)
    call = rec.calls[-1]
    sdk_path = urllib.parse.urlsplit(call.url).path
    sdk_query = urllib.parse.urlencode(call.params or {})
    sdk_auth = ":".join(call.auth) if call.auth else "?"
    sdk_body = twilio_wire_body(call)

    expected = f"{call.method} {sdk_path}{'?' + sdk_query if sdk_query else ''} auth={sdk_auth} body={sdk_body}"
    got = f"{r['method']} {path}{'?' + query if query else ''} auth={got_auth} body={r['body']}"
    canonical = "\n".join([f"{call.method} {call.url}", f"params={call.params!r}",
                           f"auth={sdk_auth}", f"data={call.data!r}",
                           f"headers={call.headers!r}", f"wire body={sdk_body}"])
    if sdk_body != r["body"] and sorted(urllib.parse.parse_qsl(sdk_body, keep_blank_values=True)) \
            == sorted(pairs):
        problems.append("same form fields as the SDK but different bytes (field order or escaping)")
    sdk_ct = call.headers.get("Content-Type", "")
    if h.get("content-type", "").split(";")[0].strip().lower() != sdk_ct:
        problems.append(f"content-type {h.get('content-type')!r}, SDK sends {sdk_ct!r}")
    summary = f"{sdk_auth.split(':')[0]} {call.method} {sdk_path} ({', '.join(k for k, _ in pairs)})"
    return expected, got, canonical, problems, summary


def main(argv):
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    failed = False
    with open(argv[1], encoding="utf-8") as f:
        lines = f.readlines()
    providers = set()
    for line in lines:  # import only the SDKs this file needs
        try:
            providers.add(json.loads(line)["provider"])
        except (ValueError, KeyError, TypeError):
            pass  # reported as UNREADABLE below
    if not load_sdks(providers):
        return 2
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            r["headers"] = {k.lower(): v for k, v in r["headers"].items()}
            check = {"tencent": check_tencent, "alibaba": check_alibaba,
                     "twilio": check_twilio}[r["provider"]]
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
